"""The case most metric tests score: onnx_models.region_model (the ``region_model`` fixture), whose class 1 logit is ``scale`` x the mean (over
channels and pixels) of the normalised input inside a known region, class 0's logit is 0, so
p1 = sigmoid(logit1) can be written down in numpy; and the files the command-line tests run on.
"""

import numpy as np
from PIL import Image

import onnx_models

SIZE, REGION, SCALE = 16, (4, 10, 4, 10), 4.0  # onnx_models.region_model's defaults
MEAN, STD = 0.5, 0.25


def _p1(picture_float: np.ndarray, mask: np.ndarray) -> float:
    """Hand formula: probability of class 1 for an (H, W, 3) float picture in 0..255."""
    v = (picture_float / 255.0 - MEAN) / STD
    logit = SCALE * v[mask > 0].mean()
    return float(1.0 / (1.0 + np.exp(-logit)))


def _good_map(mask, seed=1):
    """Ranks the informative region first (tiny noise breaks the ties)."""
    return mask + 0.01 * np.random.default_rng(seed).random(mask.shape).astype(np.float32)


def _cli_files(tmp_path):
    import onnx

    m, _ = onnx_models.region_net(size=32, region=(8, 20, 8, 20))
    onnx.save(m, tmp_path / "region.onnx")
    pics = []
    for s in range(2):
        path = tmp_path / f"pic{s}.png"
        Image.fromarray(onnx_models.region_picture(32, (8, 20, 8, 20), seed=s)).save(path)
        pics.append(str(path))
    opts = ["--providers", "cpu", "--resize", "32", "--size", "32", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25"]
    return str(tmp_path / "region.onnx"), pics, opts

