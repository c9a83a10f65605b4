"""Pictures of decision trees (NBDT) with Pillow: the path of one prediction, and the top of a hierarchy.

    path_picture(expl)        the picture with the whole path's map, then one row per decision, top to
                              bottom: the node, its two candidates with their probabilities (the chosen
                              one marked), and the small map that separates them (red: for the chosen
                              branch, blue: for the other; each map on its own symmetric scale)
    tree_picture(h, levels)   the first ``levels`` levels of a hierarchy as boxes and lines; each box
                              names the node and counts its classes

Both read plain data: an Explanation-like object with ``image``, ``map``, ``label``, ``score`` and
``extras["path"]`` / ``extras["maps"]``, and a hierarchy-like object with ``root``, ``is_leaf``,
``kids``, ``names`` and ``leaves``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .errors import InputError
from .render import _fit_map, _font, overlay

ROW = 104  # pixels per decision
THUMB = 92  # side of a decision's map
CHOSEN = (200, 40, 40)
OTHER = (70, 90, 170)


def _clip(d: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if d.textlength(text, font=font) <= width:
        return text
    while len(text) > 4 and d.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def path_picture(expl, alpha: float = 0.5, cmap: str | None = None, width: int = 620) -> Image.Image:
    """One picture of a tree explanation: the decisions top to bottom (see the module docstring)."""
    steps = expl.extras.get("path")
    maps = expl.extras.get("maps")
    if expl.image is None or steps is None or maps is None:
        raise InputError("path_picture needs an NBDT explanation with its picture, extras['path'] and extras['maps']")
    image = np.asarray(expl.image)
    h, w = image.shape[:2]
    side = 224
    head = overlay(image, expl.map, alpha=alpha, cmap=cmap or "coolwarm", signed=True, colorbar=False)
    head = head.resize((side, max(1, round(side * h / w))), Image.BILINEAR)
    top = head.height + 16
    canvas = Image.new("RGB", (width, top + ROW * max(1, len(steps)) + 24), "white")
    canvas.paste(head, (8, 8))
    d = ImageDraw.Draw(canvas)
    big, font, small = _font(14), _font(12), _font(11)
    x0 = side + 20
    mode = expl.extras.get("mode", "")
    lines = [
        (f"{expl.method} ({mode}): {expl.label}", big, "black"),
        (f"network p = {expl.score:.3f}; tree p(leaf) = {expl.extras.get('leaf_probability', float('nan')):.3f}", font, "black"),
        (f"{len(steps)} decisions; tree predicts {expl.extras.get('prediction_label', '?')}", font, "black"),
        (f"network top-1: {'the same' if expl.extras.get('agrees') else expl.extras.get('network_top1_label', '?')}",
         font, "black"),
        ("maps: red = for the chosen branch,", small, (90, 90, 90)),
        ("blue = for the other (each its own scale)", small, (90, 90, 90)),
    ]
    y = 10
    for text, f, colour in lines:
        d.text((x0, y), _clip(d, text, f, width - x0 - 8), fill=colour, font=f)
        y += 22 if f is big else 18
    for i, (step, low) in enumerate(zip(steps, maps)):
        y = top + i * ROW
        d.line([(8, y - 4), (width - 8, y - 4)], fill=(225, 225, 225))
        m = _fit_map(np.asarray(low, np.float32), h, w)
        thumb = overlay(image, m, alpha=0.6, cmap="coolwarm", signed=True, colorbar=False).resize((THUMB, THUMB))
        canvas.paste(thumb, (8, y))
        tx = THUMB + 18
        tw = width - tx - 10
        d.text((tx, y), _clip(d, f"{i + 1}. {step['name']}", font, tw), fill="black", font=font)
        for j, cand in enumerate(step["candidates"]):
            cy = y + 22 + j * 34
            chosen = cand["node"] == step["chosen"]
            colour = CHOSEN if chosen else OTHER
            p = float(cand["probability"])
            bar = int(round(p * 150))
            d.rectangle([tx, cy + 15, tx + 150, cy + 25], outline=(200, 200, 200))
            if bar > 0:
                d.rectangle([tx, cy + 15, tx + bar, cy + 25], fill=colour)
            mark = "-> " if chosen else "   "
            greedy = "" if step["greedy"] != cand["node"] or chosen else "  (greedy choice)"
            n = int(cand["classes"])
            count = "" if n == 1 or str(cand["name"]).endswith(f"({n})") else f"  ({n} classes)"
            text = f"{mark}{cand['name']}{count}"
            d.text((tx, cy), _clip(d, text, small, tw), fill=colour, font=small)
            d.text((tx + 158, cy + 13), f"p = {p:.3f}{greedy}", fill=colour, font=small)
    return canvas


def tree_picture(h, levels: int = 4, box: int = 176, title: str | None = None) -> Image.Image:
    """The top ``levels`` levels of a hierarchy: a box per node (name, number of classes) and its edges."""
    levels = max(1, int(levels))
    slots: dict[int, float] = {}
    depth: dict[int, int] = {}
    order = []

    def place(n: int, dep: int) -> float:  # bottom nodes take successive slots, parents centre over them
        depth[n] = dep
        order.append(n)
        if h.is_leaf(n) or dep == levels - 1:
            slots[n] = float(len([k for k in slots if h.is_leaf(k) or depth[k] == levels - 1]))
            return slots[n]
        a, b = h.kids(n)
        slots[n] = (place(a, dep + 1) + place(b, dep + 1)) / 2
        return slots[n]

    place(h.root, 0)
    n_slots = 1 + int(max(v for k, v in slots.items() if h.is_leaf(k) or depth[k] == levels - 1))
    gap, row = 10, 92
    off = 30 if title else 8
    img = Image.new("RGB", (n_slots * (box + gap) + gap, off + row * (max(depth.values()) + 1)), "white")
    d = ImageDraw.Draw(img)
    font, small = _font(11), _font(10)
    if title:
        d.text((gap, 8), title, fill="black", font=_font(13))

    def centre(n):
        return gap + slots[n] * (box + gap) + box / 2, off + depth[n] * row

    for n in order:
        if n in slots and not h.is_leaf(n) and depth[n] < levels - 1:
            x, y = centre(n)
            for c in h.kids(n):
                cx, cy = centre(c)
                d.line([(x, y + 56), (cx, cy)], fill=(150, 150, 150), width=1)
    for n in order:
        x, y = centre(n)
        leaf = h.is_leaf(n)
        d.rectangle([x - box / 2, y, x + box / 2, y + 56], outline=(120, 120, 120),
                    fill=(255, 244, 235) if leaf else (238, 243, 252))
        words, lines = str(h.names[n]).split(" / "), [""]
        for wd in words:  # one class name per line where they fit, three lines at most
            cand = (lines[-1] + " / " + wd) if lines[-1] else wd
            if d.textlength(cand, font=font) <= box - 8 or not lines[-1]:
                lines[-1] = cand
            else:
                lines.append(wd)
        for i, text in enumerate(lines[:3]):
            d.text((x - box / 2 + 4, y + 3 + 13 * i), _clip(d, text, font, box - 8), fill="black", font=font)
        count = "class" if leaf else f"{len(h.leaves(n))} classes" + ("" if depth[n] < levels - 1 else ", ...")
        d.text((x - box / 2 + 4, y + 42), f"#{n}  {count}", fill=(90, 90, 90), font=small)
    return img
