"""RISE (Petsiuk et al. 2018): random smooth masks, the map is the score-weighted mean mask.

    num_masks  N random masks (default 2000)
    cells      s: each mask is an s x s grid of cells (default 8) ...
    p          ... each kept with probability p (default 0.5), upsampled bilinearly and randomly
               shifted (kernels.random_grid_masks)
    seed       the masks are drawn from default_rng(seed): same seed, same masks, same map
    fill       what hidden pixels show; "zero" in model space (default, RISE's x o M) or any fill of
               methods.base
    kind       "probabilities" (default, RISE's f_c) or "logits"

    map = sum_i f_c(x o M_i) M_i / (N p)

The masks are made chunk by chunk when the engine asks for them (the cell grids and shifts of all N
are drawn up front, in random_grid_masks's order, so chunk i is bit for bit rows i of
``random_grid_masks(N, H, W, s, p, seed)``). The scores are folded in from the cell grids and the
upsampling matrices (``GridMasks.fold``), without making the masks a second time.
"""

from __future__ import annotations

import numpy as np

from .. import engine
from ..errors import InputError
from ..kernels._checks import check_seed as _check_seed
from ..kernels.masks import _axis_taps, _check_probability, _grid_masks
from .base import Method, make_fill


class GridMasks:
    """The RISE masks of ``random_grid_masks(n, H, W, s, p, seed)``, made ``[start, stop)`` at a time."""

    def __init__(self, n: int, height: int, width: int, s: int = 8, p: float = 0.5, seed: int = 0):
        rng = np.random.default_rng(_check_seed(seed))
        self.n, self.height, self.width = int(n), int(height), int(width)
        self.grid = (rng.random((self.n, s, s)) < _check_probability(p)).astype(np.float32)
        cell_h, cell_w = -(-height // s), -(-width // s)
        self.shifts = np.empty((self.n, 2), np.int64)
        self.shifts[:, 0] = rng.integers(0, cell_h, size=self.n)
        self.shifts[:, 1] = rng.integers(0, cell_w, size=self.n)
        self.taps_y = _axis_taps(s, (s + 1) * cell_h, 1, False)[:2]
        self.taps_x = _axis_taps(s, (s + 1) * cell_w, 1, False)[:2]

    def __call__(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.height, self.width), np.float32)
        _grid_masks(self.grid[start:stop], self.shifts[start:stop], *self.taps_y, *self.taps_x, out)
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
        dy, dx = self.shifts[:, 0], self.shifts[:, 1]
        ux = Ux[dx[:, None] + np.arange(self.width)].transpose(0, 2, 1)  # (n, s, W): the columns mask i reads
        uy = Uy[np.arange(cell_h)[:, None] + np.arange(self.height)]  # (cell_h, H, s): the rows of each shift
        order = np.argsort(dy, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(dy[order]) != 0])
        shifts_present = dy[order][starts]
        grid = self.grid.astype(np.float64)
        out = np.empty((weights.shape[1], self.height, self.width))
        for t in range(weights.shape[1]):
            rows = np.matmul(grid * weights[:, t, None, None], ux)  # (n, s, W)
            per_shift = np.zeros((cell_h, s, self.width))
            per_shift[shifts_present] = np.add.reduceat(rows[order], starts, axis=0)
            out[t] = uy.transpose(1, 0, 2).reshape(self.height, -1) @ per_shift.reshape(-1, self.width)
        return out


def _dense(idx: np.ndarray, wts: np.ndarray, s: int) -> np.ndarray:
    """Bilinear taps (rows, 2) -> the dense (rows, s) upsampling matrix, float64."""
    u = np.zeros((idx.shape[0], s))
    for j in range(2):
        np.add.at(u, (np.arange(idx.shape[0]), idx[:, j]), wts[:, j])
    return u


class RISE(Method):
    name = "rise"

    def __init__(self, num_masks: int = 2000, cells: int = 8, p: float = 0.5, seed: int = 0, fill="zero",
                 kind: str = "probabilities", progress: bool | None = None, chunk_size: int | None = None):
        if int(num_masks) < 1:
            raise InputError(f"num_masks must be at least 1, not {num_masks}")
        if int(cells) < 1:
            raise InputError(f"cells must be at least 1, not {cells}")
        if not 0.0 < float(p) <= 1.0:
            raise InputError(f"p must be in (0, 1], not {p}")
        if kind not in ("probabilities", "logits"):
            raise InputError(f"kind must be 'probabilities' or 'logits', not {kind!r}")
        self.num_masks = int(num_masks)
        self.cells = int(cells)
        self.p = float(p)
        self.seed = int(seed)
        self.fill = fill
        self.kind = kind
        self._progress = progress
        self._chunk_size = chunk_size

    def _explain(self, model, x, crop, probs, targets):
        H, W = crop.shape[:2]
        masks = GridMasks(self.num_masks, H, W, self.cells, self.p, self.seed)
        baseline = make_fill(model, crop, x, self.fill)
        res = engine.run(model, x, baseline, engine.SoftMasks(n=masks.n, make=masks), kind=self.kind,
                         progress=self._progress, chunk_size=self._chunk_size, desc="rise")
        maps = masks.fold(res.scores[:, targets].astype(np.float64)) / (masks.n * self.p)  # (T, H, W)
        out = []
        for i, t in enumerate(targets):
            e = self._explanation(model, t, probs, maps[i])
            e.extras.update(masks=masks.n, cells=self.cells, keep_probability=self.p)
            e.timings.update(forward=res.forward_s, engine=res.total_s)
            out.append(e)
        return out
