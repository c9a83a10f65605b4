"""Mask sources: which parts of the input each perturbed sample keeps.

    random_binary_masks      (n, k) uint8     LIME / Kernel-SHAP style on/off per feature (segment)
    feature_masks_to_pixels  (n, H, W) float32 those masks painted onto a segment map (rarely needed:
                                              the compositing kernels read the segment map directly)
    sliding_windows          (n, 4) int32     occlusion windows [top, left, bottom, right], half-open
    window_masks             (n, H, W) float32 0 inside each window, 1 outside (the "keep" mask)
    random_grid_masks        (n, H, W) float32 RISE: upsampled random coarse grids, randomly shifted

Convention everywhere: mask value 1 keeps the input, 0 shows the baseline.  Random draws come from
``numpy.random.default_rng(seed)`` outside Numba, so a seed gives the same masks bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from onnxai.errors import InputError
from onnxai.kernels._checks import (_as_int32, _check_array, _check_out, _check_positive_int, check_number,
                                     check_seed, pair)
from onnxai.kernels.resize import _axis_taps

CLIP_MODES = ("inside", "clip")


# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _feature_masks_to_pixels(masks, segments, out):
    # masks: (n, k) uint8|float32; segments: (H, W) int32 in [0, k); out: (n, H, W) float32
    n = out.shape[0]
    H, W = segments.shape
    for i in range(n):
        for h in range(H):
            for w in range(W):
                out[i, h, w] = np.float32(masks[i, segments[h, w]])


@njit(cache=True, nogil=True)
def _window_masks(windows, out):
    # windows: (n, 4) int32 [top, left, bottom, right]; out: (n, H, W) float32
    n, H, W = out.shape
    for i in range(n):
        top = min(max(windows[i, 0], 0), H)
        left = min(max(windows[i, 1], 0), W)
        bottom = min(max(windows[i, 2], top), H)
        right = min(max(windows[i, 3], left), W)
        for h in range(H):
            inside_rows = top <= h < bottom
            for w in range(W):
                if inside_rows and left <= w < right:
                    out[i, h, w] = 0.0
                else:
                    out[i, h, w] = 1.0


@njit(cache=True, nogil=True, inline="always")
def _taps(idx, wts, u):
    """The two source indices and weights of output row/column u of a bilinear upsampling."""
    return idx[u, 0], idx[u, 1], wts[u, 0], wts[u, 1]


@njit(cache=True, nogil=True)
def _grid_masks(grid, shifts, iy, wy, ix, wx, out):
    # grid: (n, s, s) float32 of 0/1 cells; shifts: (n, 2) int64 (rows, cols) offsets of the crop;
    # iy, wy: (up_h, 4) bilinear taps of the s -> up_h upsampling (ix, wx likewise for the width);
    # out: (n, H, W) float32, the crop [dy, dy + H) x [dx, dx + W) of the upsampled grid
    n, H, W = out.shape
    for i in range(n):
        dy = shifts[i, 0]
        dx = shifts[i, 1]
        for h in range(H):
            y0, y1, a0, a1 = _taps(iy, wy, h + dy)
            for w in range(W):
                x0, x1, b0, b1 = _taps(ix, wx, w + dx)
                top = b0 * grid[i, y0, x0] + b1 * grid[i, y0, x1]
                bottom = b0 * grid[i, y1, x0] + b1 * grid[i, y1, x1]
                out[i, h, w] = a0 * top + a1 * bottom


# --------------------------------------------------------------------------------------------
# wrappers
# --------------------------------------------------------------------------------------------


def _check_probability(p, name: str = "p") -> float:
    return check_number(p, f"{name} (a probability)", 0.0, 1.0)


def random_binary_masks(n, k, p=0.5, seed=0, first_all_ones=True) -> np.ndarray:
    """(n, k) uint8 masks, each entry 1 with probability p, drawn from ``default_rng(seed)``.

    With ``first_all_ones`` row 0 is all ones: the unperturbed input, which LIME keeps as sample 0.
    """
    n = _check_positive_int(n, "n", minimum=0)
    k = _check_positive_int(k, "k")
    p = _check_probability(p)
    rng = np.random.default_rng(check_seed(seed))
    masks = (rng.random((n, k)) < p).astype(np.uint8)
    if first_all_ones and n > 0:
        masks[0] = 1
    return masks


def feature_masks_to_pixels(masks, segments, out=None) -> np.ndarray:
    """Paint per-feature masks onto a segment map: (n, k), (H, W) int -> (n, H, W) float32."""
    masks = _check_array(masks, "masks", 2, "(n, k)")
    if masks.dtype == np.bool_:
        masks = masks.view(np.uint8)
    elif masks.dtype != np.uint8:
        masks = masks.astype(np.float32) if masks.dtype != np.float32 else masks
    segments = _as_int32(_check_array(segments, "segments", 2, "(H, W)"), "segments")
    if segments.size and (segments.min() < 0 or segments.max() >= masks.shape[1]):
        raise InputError(
            f"segments must hold labels 0..{masks.shape[1] - 1} (one per mask column); "
            f"found {int(segments.min())}..{int(segments.max())}"
        )
    shape = (masks.shape[0],) + segments.shape
    out = np.empty(shape, dtype=np.float32) if out is None else _check_out(out, "out", shape, np.float32)
    _feature_masks_to_pixels(masks, segments, out)
    return out


def _axis_intervals(length: int, window: int, stride: int, clip_mode: str) -> list[tuple[int, int]]:
    """Half-open [start, stop) intervals along one axis, without duplicates, in increasing order."""
    if clip_mode == "inside":
        size = min(window, length)
        starts = list(range(0, length - size + 1, stride))
        if starts[-1] + size < length:
            starts.append(length - size)
        spans = [(s, s + size) for s in starts]
    else:
        half = window // 2
        centres = list(range(0, length, stride))
        spans = [(max(c - half, 0), min(c - half + window, length)) for c in centres]
        if spans[-1][1] < length:
            c = length - 1
            spans.append((max(c - half, 0), min(c - half + window, length)))
    unique: list[tuple[int, int]] = []
    for span in spans:
        if span[1] > span[0] and span not in unique:
            unique.append(span)
    return unique


def sliding_windows(height, width, window, stride, clip_mode="inside") -> np.ndarray:
    """Occlusion windows covering a height x width image -> (n, 4) int32 [top, left, bottom, right].

    Windows are half-open (rows top..bottom-1, columns left..right-1), ordered row by row.
    ``window`` and ``stride`` are an int or a (rows, cols) pair.  Per axis (length L, window w, stride s):

    ``clip_mode="inside"``: every window lies inside the image and has the full size (w is first
        reduced to L if larger).  Starts are 0, s, 2s, ... while start + w <= L; if the last such window
        stops short of the border one more window is added at L - w, flush with the border.  (captum's
        Occlusion keeps every start on the stride grid and truncates the last window instead.)
    ``clip_mode="clip"`` (MATLAB occlusionSensitivity, MaskClipping "on"): windows are centred on
        0, s, 2s, ... < L, spanning [c - w//2, c - w//2 + w), and whatever hangs over the image is clipped
        off, so border windows are smaller.  If the last window stops short of the far border, one more
        is centred on L - 1 so the border is occluded too.

    Every pixel is covered by at least one window whenever stride <= window; with a larger stride
    the gaps are left uncovered, by design of the caller.  Duplicate windows are dropped.
    """
    height = _check_positive_int(height, "height")
    width = _check_positive_int(width, "width")
    wh, ww = pair(window, "window")
    sh, sw = pair(stride, "stride")
    if clip_mode not in CLIP_MODES:
        raise InputError(f"unknown clip_mode {clip_mode!r}; use one of {', '.join(CLIP_MODES)}")
    rows = _axis_intervals(height, wh, sh, clip_mode)
    cols = _axis_intervals(width, ww, sw, clip_mode)
    windows = np.empty((len(rows) * len(cols), 4), dtype=np.int32)
    i = 0
    for top, bottom in rows:
        for left, right in cols:
            windows[i] = (top, left, bottom, right)
            i += 1
    return windows


def window_masks(windows, height, width, out=None) -> np.ndarray:
    """Pixel masks of occlusion windows: (n, 4) -> (n, H, W) float32, 0 inside the window, 1 outside.

    ``composite_soft(x, b, window_masks(w, H, W))`` equals ``composite_windows(x, b, w)``.
    """
    windows = _check_array(windows, "windows", 2, "(n, 4) [top, left, bottom, right]")
    if windows.shape[1] != 4:
        raise InputError(f"windows must have shape (n, 4) [top, left, bottom, right]; got {windows.shape}")
    windows = _as_int32(windows, "windows")
    height = _check_positive_int(height, "height")
    width = _check_positive_int(width, "width")
    shape = (windows.shape[0], height, width)
    out = np.empty(shape, dtype=np.float32) if out is None else _check_out(out, "out", shape, np.float32)
    _window_masks(windows, out)
    return out


def random_grid_masks(n, height, width, s=8, p=0.5, seed=0) -> np.ndarray:
    """RISE masks (Petsiuk et al. 2018) -> (n, H, W) float32 in [0, 1].

    For each mask: an s x s grid of cells, each 1 with probability p, is upsampled bilinearly
    (half-pixel centres, clamped borders: ``resize`` with align_corners=False) to
    ((s + 1) * ch, (s + 1) * cw) with ch = ceil(H / s), cw = ceil(W / s), then the H x W window
    starting at a random shift (dy, dx) in [0, ch) x [0, cw) is kept.  Draw order from
    ``default_rng(seed)``: the grids (n, s, s), then dy (n,), then dx (n,).
    """
    n = _check_positive_int(n, "n", minimum=0)
    height = _check_positive_int(height, "height")
    width = _check_positive_int(width, "width")
    s = _check_positive_int(s, "s")
    return GridMasks(n, height, width, s, p, seed)(0, n)


SOBOL_MAX_DIM = 21201  # the dimensions scipy.stats.qmc.Sobol supports (its direction numbers)
SOBOL_CHUNK = 1 << 16  # Sobol points drawn at a time (a power of two: the draws are those of one big draw)
FOLD_CHUNK = 2048  # masks folded at a time: about 60 MB of float64 for a 224-pixel-wide input


class GridMasks:
    """The RISE masks of ``random_grid_masks(n, H, W, s, p, seed)``, made ``[start, stop)`` at a time;
    ``sampling="sobol"`` draws the cell grids and shifts from one scrambled Sobol sequence instead."""

    def __init__(self, n: int, height: int, width: int, s: int = 8, p: float = 0.5, seed: int = 0,
                 sampling: str = "independent"):
        rng = np.random.default_rng(check_seed(seed))
        self.n, self.height, self.width = int(n), int(height), int(width)
        if s > min(self.height, self.width):
            raise InputError(f"{s} cells per side is more than the {self.height}x{self.width} input has pixels; "
                             "give fewer cells (RISE's default is 8)")
        if sampling == "sobol" and s * s + 2 > SOBOL_MAX_DIM:
            raise InputError(f"sampling='sobol' draws at most {int((SOBOL_MAX_DIM - 2) ** 0.5)} cells per side "
                             f"(scipy's Sobol sequence has {SOBOL_MAX_DIM} dimensions); give fewer cells or "
                             "sampling='independent'")
        cell_h, cell_w = -(-height // s), -(-width // s)
        self.shifts = np.empty((self.n, 2), np.int64)
        if sampling == "sobol":
            # One scrambled Sobol point (Owen scrambling, scipy.stats.qmc) per mask, s*s + 2 coordinates:
            # a cell is shown where its coordinate is below p, the two last give the shifts. Every
            # aligned block of 2^m masks is balanced in each coordinate; the first n points of the
            # sequence do not depend on how many are drawn, so every prefix is the design of n masks.
            from scipy.stats import qmc

            p = _check_probability(p)
            engine = qmc.Sobol(s * s + 2, scramble=True, seed=rng)
            self.grid = np.empty((self.n, s, s), np.uint8)
            for a in range(0, self.n, SOBOL_CHUNK):  # a chunk at a time: s * s + 2 float64 a mask
                k = min(SOBOL_CHUNK, self.n - a)
                # the first draw: 2^m >= k points (scipy warns for other counts); later ones follow on
                u = engine.random_base2(max(0, (k - 1).bit_length()))[:k] if a == 0 else engine.random(k)
                self.grid[a:a + k] = (u[:, : s * s] < p).reshape(k, s, s)
                self.shifts[a:a + k, 0] = np.minimum((u[:, s * s] * cell_h).astype(np.int64), cell_h - 1)
                self.shifts[a:a + k, 1] = np.minimum((u[:, s * s + 1] * cell_w).astype(np.int64), cell_w - 1)
        elif sampling == "independent":
            self.grid = (rng.random((self.n, s, s)) < _check_probability(p)).astype(np.uint8)
            self.shifts[:, 0] = rng.integers(0, cell_h, size=self.n)
            self.shifts[:, 1] = rng.integers(0, cell_w, size=self.n)
        else:
            raise InputError(f"unknown sampling {sampling!r}; use 'independent' or 'sobol'")
        self.taps_y = _axis_taps(s, (s + 1) * cell_h, 1, False)[:2]
        self.taps_x = _axis_taps(s, (s + 1) * cell_w, 1, False)[:2]

    def __call__(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.height, self.width), np.float32)
        _grid_masks(self.grid[start:stop].astype(np.float32), self.shifts[start:stop], *self.taps_y, *self.taps_x, out)
        return out

    def fold(self, weights: np.ndarray) -> np.ndarray:
        """sum_i weights[i, t] * mask_i for every column t: (n, T) -> (T, H, W) float64.

        Without making a single mask: mask_i = Uy[dy_i + h] G_i Ux[dx_i + w]^T, with Uy, Ux the dense
        bilinear upsampling matrices and G_i the cell grid, so the sum is one small matmul per mask
        along the width, a sum per vertical shift, and one (H, ch*s) @ (ch*s, W) product: about a
        twentieth of the work of making the n masks again.
        """
        s = self.grid.shape[1]
        Uy, Ux = _dense(*self.taps_y, s), _dense(*self.taps_x, s)  # ((s + 1) * cell, s)
        cell_h = Uy.shape[0] // (s + 1)
        uy = Uy[np.arange(cell_h)[:, None] + np.arange(self.height)]  # (cell_h, H, s): the rows of each shift
        per_shift = np.zeros((weights.shape[1], cell_h, s, self.width))
        for a in range(0, self.n, FOLD_CHUNK):  # masks a chunk at a time: ux alone is s * W float64 a mask
            dy, dx = self.shifts[a:a + FOLD_CHUNK, 0], self.shifts[a:a + FOLD_CHUNK, 1]
            ux = Ux[dx[:, None] + np.arange(self.width)].transpose(0, 2, 1)  # (c, s, W): the columns mask i reads
            order = np.argsort(dy, kind="stable")
            starts = np.flatnonzero(np.r_[True, np.diff(dy[order]) != 0])
            grid = self.grid[a:a + FOLD_CHUNK].astype(np.float64)
            for t in range(weights.shape[1]):
                rows = np.matmul(grid * weights[a:a + FOLD_CHUNK, t, None, None], ux)  # (c, s, W)
                per_shift[t, dy[order][starts]] += np.add.reduceat(rows[order], starts, axis=0)
        up = uy.transpose(1, 0, 2).reshape(self.height, -1)
        return np.stack([up @ p.reshape(-1, self.width) for p in per_shift])


def _dense(idx: np.ndarray, wts: np.ndarray, s: int) -> np.ndarray:
    """Bilinear taps (rows, 2) -> the dense (rows, s) upsampling matrix, float64."""
    u = np.zeros((idx.shape[0], s))
    for j in range(2):
        np.add.at(u, (np.arange(idx.shape[0]), idx[:, j]), wts[:, j])
    return u
