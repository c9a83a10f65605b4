"""A side-by-side HTML report: one self-contained file that opens in any browser with no server.

Every picture is embedded as a base64 PNG data URI; the style sheet is inline; no script, no external
link. For each picture the report shows the crop the model saw, its top-k predictions, then one row
per explained class with the overlay of every method side by side, the methods' parameters and
timings, and (when given) the faithfulness metrics of ``onnxai.metrics`` and their curves.

    rep = Report("chelsea", model=model)
    rep.add_picture("samples/chelsea.png", crop, predictions, explanations, scores)
    rep.add_figure("deletion and insertion curves", curves_png)
    rep.save("out/report.html")
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px 0; } h2 { font-size: 18px; margin: 28px 0 8px 0; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 16px 0 6px 0; }
.meta { color: #666; font-size: 13px; }
.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; padding: 6px; border: 1px solid #e3e3e3; border-radius: 6px; background: #fafafa; }
figure img { display: block; max-width: 100%; image-rendering: auto; }
figcaption { font-size: 13px; margin-top: 4px; text-align: center; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 10px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f2f2f2; } td.l, th.l { text-align: left; }
details { font-size: 12px; margin: 4px 0; } pre { margin: 4px 0; white-space: pre-wrap; }
.best { font-weight: bold; } ul.legend { font-size: 12px; color: #444; margin: 0 0 10px 0; padding-left: 18px; }
.tree details { margin: 1px 0 1px 14px; font-size: 13px; } .tree .leaf { margin-left: 28px; font-size: 13px; }
.tree .on { color: #b42020; font-weight: bold; } .tree .n { color: #888; }
"""


def png_data_uri(img) -> str:
    """A PIL image or (H, W[, 3]) uint8 array -> "data:image/png;base64,..."."""
    from PIL import Image

    if not isinstance(img, Image.Image):
        img = Image.fromarray(np.asarray(img))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _e(v) -> str:
    return html.escape(str(v), quote=True)


def _img(img, alt: str, width: int | None = None) -> str:
    w = f' width="{int(width)}"' if width else ""
    return f'<img src="{png_data_uri(img)}" alt="{_e(alt)}"{w}>'


def _table(heads, rows, left_cols=1, titles=None) -> str:
    """titles: an optional tooltip per heading (None for none)."""
    tips = [f' title="{_e(t)}"' if t else "" for t in (titles or [None] * len(heads))]
    h = "".join(f'<th class="l"{tip}>{_e(x)}</th>' if i < left_cols else f"<th{tip}>{_e(x)}</th>"
                for i, (x, tip) in enumerate(zip(heads, tips)))
    body = []
    for r in rows:
        cells = []
        for i, x in enumerate(r):
            cls = ' class="l"' if i < left_cols else ""
            cells.append(f"<td{cls}>{x if isinstance(x, _Raw) else _e(x)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _fmt(v, digits=3) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


@dataclass
class Report:
    """Collects sections and writes one HTML file."""

    title: str = "onnxai report"
    model: object = None
    params: dict = field(default_factory=dict)
    _parts: list = field(default_factory=list)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))  # saving twice: same file

    def add_picture(self, name: str, crop: np.ndarray, predictions=(), explanations=(), scores=None,
                    alpha: float = 0.5, cmap: str | None = None) -> None:
        """One picture: the crop, its top-k, and the overlays of every explanation grouped by class.

        predictions: onnxai Prediction objects (index, label, probability).
        explanations: Explanation objects (any methods, any classes of this picture).
        scores: optional {(method, target): metrics.Score} for the metrics table.
        """
        from . import render

        out = [f"<section><h2>{_e(name)}</h2>", '<div class="row">',
               f'<figure>{_img(_enlarged(crop)[0], "the picture the model saw")}'
               f"<figcaption>input {crop.shape[1]}x{crop.shape[0]}</figcaption></figure>"]
        if predictions:
            rows = [[str(k), p.label, str(p.index), f"{p.probability:.2%}"] for k, p in enumerate(predictions, 1)]
            out.append(f"<div><h3>top-{len(predictions)} predictions</h3>"
                       f"{_table(['#', 'class', 'index', 'probability'], rows, left_cols=2)}</div>")
        out.append("</div>")
        by_target: dict[int, list] = {}
        for e in explanations:
            by_target.setdefault(int(e.target), []).append(e)
        for target, group in by_target.items():
            label = group[0].label
            name_txt = label if label == f"class {target}" else f"{label} (class {target})"
            out.append(f"<h3>{_e(name_txt)}, p = {group[0].score:.3f}</h3><div class=\"row\">")
            for e in group:
                pic, map_ = _enlarged(e.image if e.image is not None else crop, e.map)
                panel = render.overlay(pic, map_, alpha=alpha, cmap=cmap)
                secs = float(e.timings.get("total", 0.0))
                out.append(f'<figure data-method="{_e(e.method)}">{_img(panel, f"{e.method} map for {label}")}'
                           f"<figcaption><b>{_e(e.method)}</b> &middot; {secs:.2f} s{stderr_caption(e)}"
                           f"</figcaption></figure>")
            out.append("</div>")
            rows = []
            for e in group:
                t = ", ".join(f"{k} {float(v):.3f}s" for k, v in e.timings.items() if isinstance(v, (int, float)))
                facts = {k: v for k, v in e.extras.items() if isinstance(v, (int, float, str, bool))}
                rows.append([e.method, _Raw(f"<pre>{_e(json.dumps(_plain(e.params), sort_keys=True))}</pre>"),
                             _Raw(f"<pre>{_e(json.dumps(_plain(facts)))}</pre>"), t])
            out.append(f"<details><summary>parameters, facts and timings</summary>"
                       f"{_table(['method', 'parameters', 'facts', 'timings'], rows, left_cols=4)}</details>")
            if scores:
                srows = [s for (m, t), s in scores.items() if t == target]
                if srows:
                    out.append(metrics_table(srows))
        out.append("</section>")
        self._parts.append("".join(out))

    def add_figure(self, caption: str, img) -> None:
        self._parts.append(f"<section><h2>{_e(caption)}</h2><figure>{_img(img, caption)}"
                           f"<figcaption>{_e(caption)}</figcaption></figure></section>")

    def add_evaluation(self, evaluation, curves=None) -> None:
        """The summary table (mean ± std over pictures) of a metrics.Evaluation, and its curves."""
        from .metrics import columns

        cols = columns()
        heads = ["method", "n"] + [c.summary_heading for c in cols]
        rows = [[m, str(d["n"])] + [f"{d[c.name][0]:.{c.digits}f} ± {d[c.name][1]:.{c.digits}f}" for c in cols]
                for m, d in evaluation.summary().items()]
        titles = [None, None] + [c.description for c in cols]
        self._parts.append(f"<section><h2>evaluation over {len({s.image for s in evaluation.scores})} pictures</h2>"
                           f"{_table(heads, rows, titles=titles)}</section>")
        if curves is not None:
            self.add_figure("mean deletion and insertion curves", curves)

    def add_tree(self, hierarchy, explanations=(), title: str = "decision tree (NBDT)") -> None:
        """A hierarchy as nested <details> (no script): every inner node a summary with its name and number
        of classes; the nodes on the paths of ``explanations`` open, marked, with their probabilities."""
        self._parts.append(f"<section><h2>{_e(title)}</h2>{tree_details(hierarchy, explanations)}</section>")

    def html(self) -> str:
        head = [f"<h1>{_e(self.title)}</h1>"]
        meta = []
        if self.model is not None:
            meta.append(f"model {_e(getattr(self.model, 'path', None) or 'in memory')} "
                        f"({_e(getattr(self.model, 'provider', ''))}, {getattr(self.model, 'num_classes', '?')} classes)")
        meta.append(f"written {_e(self.created)} by onnxai")
        head.append(f'<p class="meta">{"; ".join(meta)}</p>')
        if self.params:
            head.append(f"<details><summary>run parameters</summary><pre>{_e(json.dumps(_plain(self.params), indent=1))}</pre></details>")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(self.title)}</title>"
                f"<style>{_CSS}</style></head><body>{''.join(head)}{''.join(self._parts)}</body></html>\n")

    def save(self, path, force: bool = True) -> Path:
        """Write the HTML file through safe_io; overwrites unless ``force=False``."""
        from .safe_io import write_text

        return write_text(Path(path), self.html(), force)


def stderr_caption(e) -> str:
    """' · stderr ≤ X (Y% of max |value|), K of N features unsettled' for a sampled map, '' otherwise."""
    se = getattr(e, "stderr", None)
    if se is None or not np.size(se):
        return ""
    se = np.asarray(se, np.float64)
    if not np.any(se):
        return " &middot; exact (stderr 0)"
    if not np.isfinite(se).any():
        return " &middot; stderr not estimated"
    values = np.asarray(e.importance if e.importance is not None and np.shape(e.importance) == se.shape else e.map,
                        np.float64)
    if values.shape != se.shape:
        return ""
    ref = values - values.mean() if e.importance is None else values
    scale = float(np.max(np.abs(ref))) or 1.0
    top = float(np.nanmax(se))
    what = "features" if e.importance is not None else "pixels"
    unsettled = int(np.sum(np.abs(ref) < 1.96 * se))
    stop = f", {e.extras['stopped']} at {e.extras.get('num_samples')}" if e.extras.get("stopped") else ""
    return (f" &middot; stderr &le; {top:.3g} ({100 * top / scale:.0f}% of max |value|), {unsettled} of {se.size} "
            f"{what} unsettled at 95%{stop}")


def metrics_table(scores) -> str:
    """HTML table of metrics.Score rows, one column per registered metric, and what each column means.

    The best value of a column is bold only when one row alone has it (as printed): a tie, such as
    several maps and the random one all at AD 0.0, marks nothing."""
    from .metrics import REGISTRY

    cols = list(REGISTRY.values())
    best = {}
    for c in cols:
        shown = [float(_fmt(c.value(s), c.digits)) for s in scores]
        top = min(shown) if c.direction == "lower" else max(shown)
        best[c.name] = top if shown.count(top) == 1 and len(scores) > 1 else None
    rows = []
    for s in scores:
        cells = [s.method]
        for c in cols:
            txt = _e(_fmt(c.value(s), c.digits))
            is_best = best[c.name] is not None and float(_fmt(c.value(s), c.digits)) == best[c.name]
            cells.append(_Raw(f'<span class="best">{txt}</span>' if is_best else txt))
        rows.append(cells)
    heads = ["method"] + [c.text_heading for c in cols]
    legend = "".join(f"<li><b>{_e(c.text_heading)}</b> ({_e(c.direction)} is better): {_e(c.description)}</li>"
                     for c in cols)
    return ("<h3>faithfulness</h3>" + _table(heads, rows, titles=[None] + [c.description for c in cols])
            + f'<ul class="legend">{legend}<li>bold: the best value of a column, when one row alone has it; '
              "random: a random map, the baseline every method should beat</li></ul>")


def _enlarged(picture: np.ndarray, map_: np.ndarray | None = None, at_least: int = 224):
    """Small pictures (tiny test models) repeated pixel by pixel to about ``at_least`` wide, map alike."""
    from .render import _fit_map

    h, w = picture.shape[:2]
    k = max(1, -(-at_least // max(w, 1)))
    if map_ is not None:
        map_ = _fit_map(np.asarray(map_, np.float32), h, w)
    if k == 1:
        return picture, map_
    big = np.repeat(np.repeat(picture, k, 0), k, 1)
    return big, (None if map_ is None else np.repeat(np.repeat(map_, k, 0), k, 1))


def _plain(v):
    from .explanation import _jsonable

    return _jsonable(v)


def tree_details(h, explanations=()) -> str:
    """The nested <details> of a hierarchy (see ``Report.add_tree``); built without recursion, so deep
    trees (single linkage) are fine."""
    marks: dict[int, list[str]] = {}
    for e in explanations:
        who = f"{Path(e.source).name if e.source else 'picture'}"
        for step in e.extras.get("path", []):
            marks.setdefault(int(step["chosen"]), []).append(f"{who}: p = {float(step['probability']):.3f}")
        marks.setdefault(int(h.root), []).append(f"{who}: {e.extras.get('mode', '')} -> {e.label}")
    out = ['<div class="tree">']
    stack = [("node", h.root)]
    while stack:
        kind, n = stack.pop()
        if kind == "close":
            out.append("</details>")
            continue
        mark = marks.get(n)
        cls = ' class="on"' if mark else ""
        note = f' <span class="n">[{_e("; ".join(mark))}]</span>' if mark else ""
        if h.is_leaf(n):
            out.append(f'<div class="leaf"><span{cls}>{_e(h.names[n])}</span> <span class="n">#{n}</span>{note}</div>')
            continue
        out.append(f"<details{' open' if mark else ''}><summary><span{cls}>{_e(h.names[n])}</span> "
                   f'<span class="n">#{n}, {len(h.leaves(n))} classes</span>{note}</summary>')
        a, b = h.kids(n)
        stack += [("close", n), ("node", b), ("node", a)]
    out.append("</div>")
    return "".join(out)
