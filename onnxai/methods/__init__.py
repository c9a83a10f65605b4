"""The explanation methods, one file each; ``METHODS`` maps CLI names to classes."""

from .kernel_shap import KernelSHAP
from .lime import LIME, masked_topk
from .occlusion import Occlusion
from .cam import CAM, GradCAM
from .rise import RISE
from .score_cam import ScoreCAM

METHODS = {
    "lime": LIME,
    "occlusion": Occlusion,
    "cam": CAM,
    "grad-cam": GradCAM,
    "score-cam": ScoreCAM,
    "rise": RISE,
    "kernel-shap": KernelSHAP,
}

__all__ = ["CAM", "GradCAM", "ScoreCAM", "RISE", "KernelSHAP", "LIME", "Occlusion", "METHODS", "masked_topk"]
