"""Pictures of explanations with Pillow and numpy: colour maps, overlays with a colour bar, montages.

Colour maps: "jet" (MATLAB's classic), "viridis" (perceptually uniform, for maps that are >= 0) and
"coolwarm" (diverging blue-white-red, for signed maps: red = for the class, blue = against). The
viridis and coolwarm tables are sampled anchor colours of the published maps (viridis: van der Walt &
Smith, CC0; coolwarm: Moreland 2009) interpolated linearly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import InputError
from .safe_io import clean_label
from .kernels.resize import resize_map

_VIRIDIS = [
    (0.00, (68, 1, 84)), (0.13, (71, 44, 122)), (0.25, (59, 81, 139)), (0.38, (44, 113, 142)),
    (0.50, (33, 144, 141)), (0.63, (39, 173, 129)), (0.75, (92, 200, 99)), (0.88, (170, 220, 50)),
    (1.00, (253, 231, 37)),
]
_COOLWARM = [
    (0.00, (59, 76, 192)), (0.125, (98, 130, 234)), (0.25, (141, 176, 254)), (0.375, (184, 208, 249)),
    (0.50, (221, 221, 221)), (0.625, (245, 196, 173)), (0.75, (244, 154, 123)), (0.875, (222, 96, 77)),
    (1.00, (180, 4, 38)),
]
COLORMAPS = ("jet", "viridis", "coolwarm")


def _interp_table(anchors, t):
    pos = np.array([a[0] for a in anchors])
    cols = np.array([a[1] for a in anchors], np.float64)
    return np.stack([np.interp(t, pos, cols[:, c]) for c in range(3)], axis=-1)


def colormap(values: np.ndarray, name: str = "jet") -> np.ndarray:
    """values in [0, 1] (any shape) -> RGB uint8 (shape + (3,)); NaN becomes mid grey."""
    t = np.clip(np.nan_to_num(np.asarray(values, np.float64), nan=0.5), 0.0, 1.0)
    if name == "jet":
        r = np.clip(1.5 - np.abs(4 * t - 3), 0, 1)
        g = np.clip(1.5 - np.abs(4 * t - 2), 0, 1)
        b = np.clip(1.5 - np.abs(4 * t - 1), 0, 1)
        rgb = np.stack([r, g, b], axis=-1) * 255
    elif name == "viridis":
        rgb = _interp_table(_VIRIDIS, t)
    elif name == "coolwarm":
        rgb = _interp_table(_COOLWARM, t)
    else:
        raise InputError(f"unknown colour map {name!r}; use one of {COLORMAPS}")
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def normalise_map(map_: np.ndarray, signed: bool | None = None) -> tuple[np.ndarray, float, float, bool]:
    """-> (values in [0, 1], low, high, signed). Signed maps are scaled symmetrically around 0."""
    m = np.asarray(map_, np.float64)
    finite = m[np.isfinite(m)]
    if finite.size == 0:
        return np.full(m.shape, 0.5), 0.0, 0.0, False
    lo, hi = float(finite.min()), float(finite.max())
    if signed is None:
        signed = lo < 0 < hi and abs(lo) > 0.05 * abs(hi)
    if signed:
        a = max(abs(lo), abs(hi)) or 1.0
        return (m / a + 1) / 2, -a, a, True
    if hi - lo <= 0:
        return np.zeros(m.shape), lo, hi, False
    return (m - lo) / (hi - lo), lo, hi, False


def _fit_map(map_: np.ndarray, h: int, w: int) -> np.ndarray:
    """A map (e.g. a coarse grid) at h x w: ``kernels.resize_map`` (NaN drawn as 0), the resizer of the methods."""
    if map_.shape == (h, w):
        return map_
    return resize_map(np.nan_to_num(np.asarray(map_, np.float32)), h, w)


def overlay(image: np.ndarray, map_: np.ndarray, alpha: float = 0.5, cmap: str | None = None,
            signed: bool | None = None, colorbar: bool = True, title: str | None = None,
            unsettled: np.ndarray | None = None) -> Image.Image:
    """Blend the coloured map over the picture; optional colour bar and title. Returns a PIL image.

    unsettled: (H, W) bool, pixels whose value the 95% interval does not settle: drawn grey with
    diagonal hatching instead of the colour map."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"overlay needs an (H, W, 3) picture, got {image.shape}")
    h, w = image.shape[:2]
    m = _fit_map(np.asarray(map_, np.float32), h, w)
    t, lo, hi, is_signed = normalise_map(m, signed)
    cmap = cmap or ("coolwarm" if is_signed else "jet")
    colours = colormap(t, cmap).astype(np.float32)
    blend = (1 - alpha) * image.astype(np.float32) + alpha * colours
    if unsettled is not None:
        u = _fit_map(np.asarray(unsettled, np.float32), h, w) > 0.5
        grey = image.astype(np.float32).mean(axis=2, keepdims=True) * 0.6 + 60
        hatch = ((np.arange(h)[:, None] + np.arange(w)[None, :]) % 6 == 0)[..., None]
        shaded = np.where(hatch, 40.0, np.broadcast_to(grey, blend.shape))
        blend = np.where(u[..., None], shaded, blend)
    out = Image.fromarray(np.clip(np.rint(blend), 0, 255).astype(np.uint8))
    if colorbar:
        out = _with_colorbar(out, cmap, lo, hi)
    if title:
        out = _with_title(out, title)
    return out


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _with_colorbar(img: Image.Image, cmap: str, lo: float, hi: float) -> Image.Image:
    h = img.height
    bar_w, pad, text_w = 14, 6, 58
    canvas = Image.new("RGB", (img.width + pad + bar_w + text_w, h), "white")
    canvas.paste(img, (0, 0))
    ramp = colormap(np.linspace(1, 0, h)[:, None].repeat(bar_w, 1), cmap)
    canvas.paste(Image.fromarray(ramp), (img.width + pad, 0))
    d = ImageDraw.Draw(canvas)
    font = _font(11)
    x = img.width + pad + bar_w + 3
    d.text((x, 0), _fmt(hi), fill="black", font=font)
    d.text((x, h // 2 - 6), _fmt((lo + hi) / 2), fill="black", font=font)
    d.text((x, h - 13), _fmt(lo), fill="black", font=font)
    return canvas


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _with_title(img: Image.Image, title: str) -> Image.Image:
    bar = 18
    canvas = Image.new("RGB", (img.width, img.height + bar), "white")
    canvas.paste(img, (0, bar))
    d = ImageDraw.Draw(canvas)
    font = _font(12)
    text = title = clean_label(title, limit=200)  # labels are untrusted: no newlines or control characters
    while len(text) > 4 and d.textlength(text, font=font) > img.width - 4:
        text = text[:-2]
    if text != title:
        text = text[:-1] + "…"
    d.text((2, 2), text, fill="black", font=font)
    return canvas


def montage(panels: list[Image.Image | np.ndarray], titles: list[str] | None = None, columns: int | None = None,
            pad: int = 6) -> Image.Image:
    """Side-by-side grid of pictures with optional titles (e.g. "LIME (tabby cat)")."""
    if not panels:
        raise InputError("montage needs at least one picture")
    imgs = [p if isinstance(p, Image.Image) else Image.fromarray(np.asarray(p)) for p in panels]
    if titles:
        imgs = [_with_title(im, t) for im, t in zip(imgs, titles)]
    columns = columns or min(len(imgs), 4)
    rows = (len(imgs) + columns - 1) // columns
    cw = max(im.width for im in imgs)
    ch = max(im.height for im in imgs)
    canvas = Image.new("RGB", (columns * cw + (columns + 1) * pad, rows * ch + (rows + 1) * pad), "white")
    for i, im in enumerate(imgs):
        r, c = divmod(i, columns)
        canvas.paste(im, (pad + c * (cw + pad), pad + r * (ch + pad)))
    return canvas


def explanation_panel(expl, alpha: float = 0.5, cmap: str | None = None, colorbar: bool = True,
                      mark_unsettled: bool = False) -> Image.Image:
    """Overlay of one Explanation on the picture it explains, titled "method (label p=...)";
    ``mark_unsettled`` greys and hatches what ``expl.unsettled()`` marks (sign not settled at 95%)."""
    if expl.image is None:
        raise InputError("the explanation carries no picture; pass the image to overlay() yourself")
    title = f"{expl.method} ({expl.label}, p={expl.score:.2f})"
    u = expl.unsettled() if mark_unsettled and hasattr(expl, "unsettled") else None
    if u is not None and u.shape != np.shape(expl.map):
        u = None
    return overlay(expl.image, expl.map, alpha=alpha, cmap=cmap, colorbar=colorbar, title=title, unsettled=u)


def save_png(img: Image.Image | np.ndarray, path, force: bool = True) -> Path:
    """Write a PNG through safe_io (a unique temporary, then a rename; never through a symbolic link).
    Overwrites an existing file unless ``force=False``."""
    from .safe_io import open_atomic

    path = Path(path)
    if not isinstance(img, Image.Image):
        img = Image.fromarray(np.asarray(img))
    with open_atomic(path, "wb", force) as f:
        img.save(f, format="PNG")
    return path


# --------------------------------------------------------------------------- line plots (metrics curves)

PLOT_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
                (227, 119, 194), (23, 190, 207), (188, 189, 34), (127, 127, 127)]


def line_plot(series: dict, title: str = "", xlabel: str = "", ylabel: str = "", size=(440, 320),
              ylim: tuple | None = (0.0, 1.0), colours: dict | None = None, legend: str = "upper") -> Image.Image:
    """Curves drawn with Pillow: series = {name: (x, y)}; a legend names each one. Returns a PIL image.

    ylim None fits the y range to the data; x always spans the data's range. legend: "upper" or
    "lower" right corner.
    """
    if not series:
        raise InputError("line_plot needs at least one curve")
    w, h = size
    left, right, top, bottom = 46, 10, 24 if title else 10, 34
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font = _font(11)
    xs = np.concatenate([np.asarray(x, np.float64) for x, _ in series.values()])
    ys = np.concatenate([np.asarray(y, np.float64) for _, y in series.values()])
    x0, x1 = float(np.nanmin(xs)), float(np.nanmax(xs))
    y0, y1 = ylim if ylim is not None else (float(np.nanmin(ys)), float(np.nanmax(ys)))
    if x1 <= x0:
        x1 = x0 + 1
    if y1 <= y0:
        y1 = y0 + 1
    pw, ph = w - left - right, h - top - bottom

    def px(x, y):
        return left + (x - x0) / (x1 - x0) * pw, top + (1 - (y - y0) / (y1 - y0)) * ph

    for k in range(6):  # grid and tick labels
        fy = y0 + (y1 - y0) * k / 5
        fx = x0 + (x1 - x0) * k / 5
        _, yy = px(x0, fy)
        xx, _ = px(fx, y0)
        d.line([(left, yy), (left + pw, yy)], fill=(232, 232, 232))
        d.line([(xx, top), (xx, top + ph)], fill=(232, 232, 232))
        d.text((2, yy - 6), _fmt(fy), fill="black", font=font)
        d.text((xx - 8, top + ph + 3), _fmt(fx), fill="black", font=font)
    d.rectangle([left, top, left + pw, top + ph], outline="black")
    for i, (name, (x, y)) in enumerate(series.items()):
        colour = (colours or {}).get(name, PLOT_COLOURS[i % len(PLOT_COLOURS)])
        pts = [px(float(a), float(b)) for a, b in zip(x, y) if np.isfinite(a) and np.isfinite(b)]
        if len(pts) > 1:
            d.line(pts, fill=colour, width=2)
        ly = top + 4 + 13 * i if legend == "upper" else top + ph - 4 - 13 * (len(series) - i)
        lx = left + pw - 8 - max(int(d.textlength(str(n), font=font)) for n in series) - 18
        d.line([(lx, ly + 6), (lx + 14, ly + 6)], fill=colour, width=3)
        d.text((lx + 18, ly), str(name), fill="black", font=font)
    if title:
        d.text((left, 5), title, fill="black", font=_font(12))
    if xlabel:
        d.text((left + pw // 2 - int(d.textlength(xlabel, font=font)) // 2, h - 14), xlabel, fill="black", font=font)
    if ylabel:
        d.text((left + pw - int(d.textlength(ylabel, font=font)), 6), ylabel, fill=(90, 90, 90), font=font)
    return img


def explanations_montage(explanations, alpha: float = 0.5, cmap: str | None = None,
                         colorbar: bool = True) -> Image.Image:
    """Every map side by side: one row per explained class, one column per method (in first-seen order)."""
    expls = list(explanations)
    if not expls:
        raise InputError("no explanations to draw")
    methods = list(dict.fromkeys(e.method for e in expls))
    targets = list(dict.fromkeys(int(e.target) for e in expls))
    cell = {(e.method, int(e.target)): e for e in expls}
    panels = []
    for t in targets:
        for m in methods:
            e = cell.get((m, t))
            if e is None:
                ref = next(x for x in expls if x.image is not None)
                panels.append(Image.new("RGB", (ref.image.shape[1], ref.image.shape[0] + 18), "white"))
            else:
                panels.append(explanation_panel(e, alpha=alpha, cmap=cmap, colorbar=colorbar))
    return montage(panels, columns=len(methods))


def evaluation_curves(ev) -> Image.Image:
    """Mean deletion and insertion curves of a metrics.Evaluation side by side (one colour per method)."""
    colours = {m: PLOT_COLOURS[i % len(PLOT_COLOURS)] for i, m in enumerate(ev.methods)}
    d = line_plot(ev.mean_curves("deletion"), "deletion (lower area is better)", "fraction of pixels deleted",
                  "p(class)", colours=colours)
    i = line_plot(ev.mean_curves("insertion"), "insertion (higher area is better)",
                  "fraction of pixels inserted", "p(class)", colours=colours, legend="lower")
    return montage([d, i], columns=2)
