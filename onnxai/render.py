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
    """Resize a map (e.g. a coarse grid) to h x w with bilinear interpolation (NaN-free input)."""
    if map_.shape == (h, w):
        return map_
    img = Image.fromarray(np.nan_to_num(np.asarray(map_, np.float32)), mode="F")
    return np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), np.float32)


def overlay(image: np.ndarray, map_: np.ndarray, alpha: float = 0.5, cmap: str | None = None,
            signed: bool | None = None, colorbar: bool = True, title: str | None = None) -> Image.Image:
    """Blend the coloured map over the picture; optional colour bar and title. Returns a PIL image."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"overlay needs an (H, W, 3) picture, got {image.shape}")
    h, w = image.shape[:2]
    m = _fit_map(np.asarray(map_, np.float32), h, w)
    t, lo, hi, is_signed = normalise_map(m, signed)
    cmap = cmap or ("coolwarm" if is_signed else "jet")
    colours = colormap(t, cmap).astype(np.float32)
    blend = (1 - alpha) * image.astype(np.float32) + alpha * colours
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
    text = title
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


def explanation_panel(expl, alpha: float = 0.5, cmap: str | None = None, colorbar: bool = True) -> Image.Image:
    """Overlay of one Explanation on the picture it explains, titled "method (label p=...)"."""
    if expl.image is None:
        raise InputError("the explanation carries no picture; pass the image to overlay() yourself")
    title = f"{expl.method} ({expl.label}, p={expl.score:.2f})"
    return overlay(expl.image, expl.map, alpha=alpha, cmap=cmap, colorbar=colorbar, title=title)


def save_png(img: Image.Image | np.ndarray, path, force: bool = False) -> Path:
    path = Path(path)
    if path.exists() and not force:
        raise InputError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(img, Image.Image):
        img = Image.fromarray(np.asarray(img))
    tmp = path.with_name(path.name + ".tmp.png")
    img.save(tmp, format="PNG")
    tmp.replace(path)
    return path
