"""The explanation methods, one file each; ``METHODS`` maps CLI names to classes."""

from .lime import LIME, masked_topk
from .occlusion import Occlusion

METHODS = {
    "lime": LIME,
    "occlusion": Occlusion,
}

__all__ = ["LIME", "Occlusion", "METHODS", "masked_topk"]
