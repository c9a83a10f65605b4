"""``_index.html`` of a store written with ``--pictures``: one thumbnail per item x method x target,
with its label and score, linking to the full PNG (relative links: the folder can be moved)."""

from __future__ import annotations

import html
from pathlib import Path

from ..safe_io import write_text
from .store import PART_GLOB, overlay_name


def write_index(out) -> Path:
    import pyarrow.parquet as pq

    out = Path(out)
    cells = []
    for part in sorted(out.glob(PART_GLOB)):
        t = pq.read_table(part, columns=["item_id", "method", "target", "label", "score", "status", "error"])
        for r in t.to_pylist():
            png = f"_pictures/{overlay_name(r['item_id'], r['method'], r['target'])}"
            caption = html.escape(f"{r['item_id']} · {r['method']}")
            if r["status"] != "ok":
                cells.append(f'<figure class="err"><figcaption>{caption}<br>error: '
                             f'{html.escape(str(r["error"]))}</figcaption></figure>')
            elif (out / png).exists():
                cells.append(f'<figure><a href="{png}"><img src="{png}" loading="lazy"></a><figcaption>{caption}'
                             f'<br>{html.escape(str(r["label"]))} p={r["score"]:.3f}</figcaption></figure>')
    page = ("<!doctype html><meta charset=utf-8><title>onnxai explain-dataset</title><style>"
            "body{font-family:sans-serif} figure{display:inline-block;width:200px;margin:6px;vertical-align:top}"
            "img{width:200px} .err{color:#a00}</style>" + "\n".join(cells))
    return write_text(out / "_index.html", page)  # safe_io: a unique temporary, never through a link
