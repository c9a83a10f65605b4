"""Pictures of one row's contributions (Pillow, no matplotlib): ``bar_chart`` (the k largest
|contributions|) and ``waterfall`` (base value -> prediction). ``expl`` is a TabularExplanation.
"""

from __future__ import annotations

import numpy as np

from ..safe_io import clean_label

_RED, _BLUE, _GREY = (200, 40, 50), (40, 90, 200), (120, 120, 120)


def _top(expl, i, k):
    t = int(expl.targets[i])
    v = expl.values[i, :, t]
    order = np.argsort(-np.abs(v), kind="stable")
    return t, v, order[:k], order[k:]


def _label(expl, i, j):
    x = expl.data[i, j]
    return f"{clean_label(expl.feature_names[j], 60)} = {x:.4g}"


def end_points(expl, i: int, total: float) -> tuple[tuple[str, float], list[tuple[str, float]]]:
    """What the waterfall starts from and ends at, named for what they are.

    Kernel SHAP: base value E[f(x)] -> the model's f(x) (the values add up to it). LIME: the
    surrogate's intercept -> the surrogate's value g(x), which only approximates the model, so the
    model's probability f(x) is shown beside it. total: start + the sum of the contributions.
    """
    t = int(expl.targets[i])
    start = float(expl.base(i)[t])
    model = float(expl.predictions[i, t])
    if str(expl.method).startswith("lime"):
        return ("surrogate intercept", start), [("surrogate g(x)", total), ("model probability f(x)", model)]
    return ("base value E[f(x)]", start), [("model f(x)", model)]


def bar_chart(expl, i: int = 0, k: int = 10, width: int = 640):
    """Horizontal bars of the k largest |contributions| of row i for its target class (red = for)."""
    from PIL import Image, ImageDraw

    from ..render import _font

    t, v, top, _ = _top(expl, i, k)
    font = _font(12)
    rowh, left, pad = 22, 230, 10
    h = 40 + rowh * len(top) + 20
    img = Image.new("RGB", (width, h), "white")
    d = ImageDraw.Draw(img)
    d.text((pad, 8), f"{expl.method}: row {expl.rows[i]}, class {clean_label(expl.class_names[t], 40)}",
           fill="black", font=font)
    span = float(np.abs(v[top]).max()) if len(top) else 1.0
    span = span or 1.0
    mid = left + (width - left - pad) // 2
    half = (width - left - pad) // 2 - 50
    d.line([(mid, 34), (mid, h - 14)], fill=_GREY)
    for r, j in enumerate(top):
        y = 36 + r * rowh
        d.text((pad, y + 3), _label(expl, i, j)[:34], fill="black", font=font)
        L = int(round(abs(v[j]) / span * half))
        x0, x1 = (mid, mid + L) if v[j] >= 0 else (mid - L, mid)
        d.rectangle([x0, y + 2, max(x1, x0 + 1), y + rowh - 4], fill=_RED if v[j] >= 0 else _BLUE)
        txt = f"{v[j]:+.4g}"
        tx = x1 + 4 if v[j] >= 0 else max(left, x0 - 6 * len(txt) - 4)
        d.text((tx, y + 3), txt, fill="black", font=font)
    return img


def waterfall(expl, i: int = 0, k: int = 10, width: int = 640):
    """Base value -> prediction, one step per feature (k largest, the rest summed), for row i."""
    from PIL import Image, ImageDraw

    from ..render import _font

    t, v, top, rest = _top(expl, i, k)
    base = float(expl.base(i)[t])
    steps = [(_label(expl, i, j)[:34], float(v[j])) for j in top]
    if len(rest):
        steps.append((f"{len(rest)} other features", float(v[rest].sum())))
    font = _font(12)
    rowh, left, pad = 22, 230, 10
    n_ends = 2 if str(expl.method).startswith("lime") else 1
    h = 60 + rowh * (len(steps) + n_ends) + 20
    img = Image.new("RGB", (width, h), "white")
    d = ImageDraw.Draw(img)
    pred = base + sum(s for _, s in steps)
    (start_name, _), ends = end_points(expl, i, pred)
    d.text((pad, 8), f"{expl.method}: row {expl.rows[i]}, class {clean_label(expl.class_names[t], 40)}: "
                     + ", ".join(f"{n} {v:.4g}" for n, v in ends), fill="black", font=font)
    cum = np.cumsum([base] + [s for _, s in steps])
    lo, hi = float(min(cum.min(), base)), float(max(cum.max(), base))
    if hi - lo < 1e-12:
        hi = lo + 1.0
    x_of = lambda val: int(left + (val - lo) / (hi - lo) * (width - left - pad - 60))  # noqa: E731
    y = 36
    d.text((pad, y + 3), start_name, fill="black", font=font)
    d.line([(x_of(base), y), (x_of(base), h - 30)], fill=_GREY)
    d.text((x_of(base) + 3, y + 3), f"{base:.4g}", fill="black", font=font)
    cur = base
    for r, (name, s) in enumerate(steps):
        y = 36 + (r + 1) * rowh
        d.text((pad, y + 3), name, fill="black", font=font)
        a, b = sorted((x_of(cur), x_of(cur + s)))
        d.rectangle([a, y + 2, max(b, a + 1), y + rowh - 4], fill=_RED if s >= 0 else _BLUE)
        d.text((b + 4, y + 3), f"{s:+.3g}", fill="black", font=font)
        cur += s
    for r, (name, value) in enumerate(ends):  # the sum's end, and the model's own value beside it
        y = 36 + (len(steps) + 1 + r) * rowh
        x = min(max(x_of(value), left), width - pad - 60)
        d.text((pad, y + 3), name, fill="black", font=font)
        d.line([(x, 36 if r == 0 else y), (x, y + rowh)], fill="black" if r == 0 else (0, 130, 0))
        d.text((x + 3, y + 3), f"{value:.4g}", fill="black", font=font)
    return img
