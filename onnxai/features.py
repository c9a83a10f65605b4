"""Features: how an image is cut into the parts that perturbation methods switch on and off.

    superpixels   scikit-image SLIC / quickshift / Felzenszwalb on an (H, W, 3) uint8 picture
    grid          near-square cells of equal size (MATLAB imageLIME's "Segmentation", "grid")
    from_labels   a label map the user already has, checked and relabelled
    segment       one entry point for all of the above
    segment_enough  ``segment``, retried when it gives fewer than half the features asked (SLIC on a
                  small or noisy picture can return one segment): SLIC with a larger compactness,
                  then a grid; returns the segments and what was done, in words
    num_segments  k, the number of features of a segment map

Every segment map returned here is (H, W) int32 with labels 0..k-1, each label used at least once,
numbered in order of first appearance scanning rows top to bottom: ``segments.max() + 1 == k``.
Plain Python on scikit-image; nothing here is a hot loop.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from onnxai.errors import InputError

METHODS = ("slic", "quickshift", "felzenszwalb", "grid")
SUPERPIXEL_METHODS = ("slic", "quickshift", "felzenszwalb")


def _check_num_features(num_features) -> int:
    if isinstance(num_features, (bool, np.bool_)) or not isinstance(num_features, numbers.Integral) or num_features < 1:
        raise InputError(f"num_features must be a positive integer (e.g. 50); got {num_features!r}")
    return int(num_features)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Any integer label map -> int32 labels 0..k-1 in order of first appearance (row-major)."""
    flat = labels.ravel()
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int32)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size, dtype=np.int32)
    return rank[inverse].reshape(labels.shape)


def _rgb(image) -> np.ndarray:
    """(H, W, 3) picture (grey (H, W) or (H, W, 1) is repeated to 3 channels)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(f"image must be an (H, W, 3) RGB picture; got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"image is empty (shape {arr.shape})")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"image must hold numbers (uint8 preferred); got dtype {arr.dtype}")
    return arr


def _felzenszwalb_count(image: np.ndarray, num_features: int, seed: int, **kwargs) -> np.ndarray:
    """Felzenszwalb with ``scale`` bisected (on a log scale) so the segment count approaches num_features.

    The count falls as scale grows; 14 halvings of [1e-2, 1e5] in log space pin it down to ~10%.
    ``min_size`` defaults to a quarter of the average segment area the request implies (so that small
    specks merge away but the requested count stays reachable), ``sigma`` to 0.8.
    """
    from skimage.segmentation import felzenszwalb

    del seed  # Felzenszwalb is deterministic
    h, w = image.shape[:2]
    sigma = kwargs.pop("sigma", 0.8)
    min_size = kwargs.pop("min_size", max(1, (h * w) // (4 * num_features)))
    if "scale" in kwargs:  # the caller fixed the scale: no search
        return felzenszwalb(image, scale=kwargs.pop("scale"), sigma=sigma, min_size=min_size, channel_axis=-1, **kwargs)
    lo, hi = math.log(1e-2), math.log(1e5)
    best, best_err = None, None
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        labels = felzenszwalb(image, scale=math.exp(mid), sigma=sigma, min_size=min_size, channel_axis=-1, **kwargs)
        count = int(labels.max()) + 1
        err = abs(count - num_features)
        if best_err is None or err < best_err:
            best, best_err = labels, err
        if count == num_features:
            break
        if count > num_features:
            lo = mid  # too many segments: larger scale
        else:
            hi = mid
    return best


def superpixels(image, num_features=50, method="slic", seed=0, **kwargs) -> np.ndarray:
    """Superpixels of an (H, W, 3) uint8 picture -> (H, W) int32 labels 0..k-1.

    slic          n_segments=num_features, compactness=10, start_label=0, channel_axis=-1; k is close
                  to num_features but not equal (SLIC places seeds on a grid and merges none)
    quickshift    the ``lime`` package's defaults: kernel_size=4, max_dist=200, ratio=0.2, and the
                  seed as ``rng=seed`` (lime passes random_seed=, the name before scikit-image 0.22; the
                  seed only breaks ties between equal densities).  num_features is IGNORED: quickshift
                  has no count parameter, its count follows kernel_size / max_dist (set them in kwargs)
    felzenszwalb  sigma=0.8, min_size ~ H*W / (4 num_features), and ``scale`` found by bisection so
                  that k comes as close to num_features as the image allows (pass scale= to fix it)

    ``kwargs`` override or extend the parameters given to scikit-image.
    """
    num_features = _check_num_features(num_features)
    if method not in SUPERPIXEL_METHODS:
        raise InputError(f"unknown superpixel method {method!r}; use one of {', '.join(SUPERPIXEL_METHODS)}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise InputError(f"seed must be an integer; got {seed!r}")
    image = _rgb(image)
    try:
        if method == "slic":
            from skimage.segmentation import slic

            params = dict(n_segments=num_features, compactness=10.0, start_label=0, channel_axis=-1)
            params.update(kwargs)
            labels = slic(image, **params)
        elif method == "quickshift":
            from skimage.segmentation import quickshift

            params = dict(kernel_size=4, max_dist=200, ratio=0.2, rng=int(seed))
            params.update(kwargs)
            labels = quickshift(image, **params)
        else:
            labels = _felzenszwalb_count(image, num_features, int(seed), **kwargs)
    except TypeError as exc:  # an unknown keyword for this algorithm
        raise InputError(f"bad parameter for {method}: {exc}; see scikit-image's skimage.segmentation.{method}") from exc
    return _relabel(np.asarray(labels))


def grid(height, width, num_features) -> np.ndarray:
    """Near-square grid cells -> (H, W) int32, label = row * cols + col.

    rows = round(sqrt(num_features * H / W)) and cols = round(num_features / rows), each at least 1
    and at most the image side, so rows x cols ~ num_features and cells follow the aspect ratio.
    Pixel row y belongs to cell row floor(y * rows / H) (likewise for columns): cell sides differ by at
    most one pixel.
    """
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
            raise InputError(f"{name} must be a positive integer; got {value!r}")
    num_features = _check_num_features(num_features)
    height, width = int(height), int(width)
    rows = min(height, max(1, round(math.sqrt(num_features * height / width))))
    cols = min(width, max(1, round(num_features / rows)))
    row_of = (np.arange(height, dtype=np.int64) * rows // height).astype(np.int32)
    col_of = (np.arange(width, dtype=np.int64) * cols // width).astype(np.int32)
    return row_of[:, None] * np.int32(cols) + col_of[None, :]


def from_labels(labels, shape) -> np.ndarray:
    """A user-supplied integer label map -> (H, W) int32 labels 0..k-1 (relabelled, order of appearance).

    ``shape`` is the picture's shape, (H, W) or (H, W, C); the label map must be exactly H x W.
    """
    arr = np.asarray(labels)
    target = tuple(int(s) for s in tuple(shape)[:2])
    if arr.ndim != 2:
        raise InputError(f"labels must be a 2-D (H, W) map of integers; got shape {arr.shape}")
    if arr.shape != target:
        raise InputError(
            f"labels are {arr.shape[0]}x{arr.shape[1]} but the image is {target[0]}x{target[1]}; "
            "make the label map at the model's input size (after resize and crop)"
        )
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int32)
    elif not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all() and (arr == np.round(arr)).all():
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"labels must be integers; got dtype {arr.dtype}")
    return _relabel(arr)


def segment(image, method="slic", num_features=50, seed=0, labels=None, **kwargs) -> np.ndarray:
    """Segments of a picture: ``labels`` if given (see from_labels), else ``method`` in METHODS.

    image: (H, W, 3) uint8 (only its shape is used for "grid" and labels).  Returns (H, W) int32.
    """
    if labels is not None:
        return from_labels(labels, np.shape(image))
    if method == "grid":
        shape = np.shape(image)
        if len(shape) < 2:
            raise InputError(f"image must be an (H, W, 3) picture; got shape {shape}")
        if kwargs:
            raise InputError(f"'grid' takes no extra parameters; got {', '.join(sorted(kwargs))}")
        return grid(shape[0], shape[1], num_features)
    if method not in SUPERPIXEL_METHODS:
        raise InputError(f"unknown segmentation method {method!r}; use one of {', '.join(METHODS)}")
    return superpixels(image, num_features=num_features, method=method, seed=seed, **kwargs)


ENOUGH = 0.5  # segment_enough retries below this fraction of the features asked
SLIC_RETRY_COMPACTNESS = (100.0, 1000.0)  # larger: closer to a grid, fewer colour-driven merges


def segment_enough(image, method="slic", num_features=50, seed=0) -> tuple[np.ndarray, str | None]:
    """-> (segments, None) when ``segment`` gives at least ENOUGH * num_features features, else the
    first retry that does (SLIC: compactness 100, then 1000; any method: a near-square grid) with a
    sentence saying what happened. The caller checks that at least 2 features came out."""
    segments = segment(image, method=method, num_features=num_features, seed=seed)
    k = num_segments(segments)
    want = max(2, math.ceil(ENOUGH * _check_num_features(num_features)))
    if method == "grid" or k >= want:
        return segments, None
    said = f"{method} gave {k} feature{'s' if k != 1 else ''} of the {num_features} asked"
    if method == "slic":
        for c in SLIC_RETRY_COMPACTNESS:
            again = segment(image, method="slic", num_features=num_features, seed=seed, compactness=c)
            if num_segments(again) >= want:
                return again, f"{said}; slic with compactness={c:g} gave {num_segments(again)}"
    cells = grid(np.shape(image)[0], np.shape(image)[1], num_features)
    return cells, f"{said}; a grid of {num_segments(cells)} cells is used instead"


def num_segments(segments) -> int:
    """k of a segment map from this module (labels 0..k-1): ``segments.max() + 1``."""
    arr = np.asarray(segments)
    if arr.size == 0:
        return 0
    return int(arr.max()) + 1
