"""The explanation methods, one file each; ``METHODS`` maps CLI names to classes, ``make_method``
builds one by name. A class's ``inputs`` says what it explains: "pictures", "tables" or "both".

Adding a method: its own file here, one line in ``METHODS``, and its test in tests/methods/.
"""

import functools
import inspect

from ..errors import InputError

from .kernel_shap import KernelSHAP
from .lime_tabular import LimeTabular
from .lime import LIME, masked_topk
from .occlusion import Occlusion
from .cam import CAM, GradCAM
from .feature_ablation import FeatureAblation
from .permutation_shap import PermutationSHAP
from .rise import RISE
from .score_cam import ScoreCAM
from .nbdt import NBDT

METHODS = {
    "lime": LIME,
    "occlusion": Occlusion,
    "cam": CAM,
    "grad-cam": GradCAM,
    "score-cam": ScoreCAM,
    "rise": RISE,
    "kernel-shap": KernelSHAP,
    "lime-tabular": LimeTabular,
    "feature-ablation": FeatureAblation,
    "permutation-shap": PermutationSHAP,
    "nbdt": NBDT,
}


@functools.lru_cache(maxsize=None)
def takes(cls, param: str) -> bool:
    """Does the constructor of method class ``cls`` take a parameter named ``param``? (How the CLI and
    the data-set runner route options; asked once per class and name.)"""
    ps = inspect.signature(cls).parameters
    return param in ps or any(p.kind == p.VAR_KEYWORD for p in ps.values())


def make_method(method: str, **params):
    """Build a method object by its CLI name ("lime", "occlusion", ...) with its parameters."""
    key = method.lower().replace("_", "-")
    if key not in METHODS:
        raise InputError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    try:
        return METHODS[key](**params)
    except TypeError as e:
        raise InputError(f"{method}: {e}") from None


__all__ = ["METHODS", "make_method", "masked_topk", "takes"] + [cls.__name__ for cls in METHODS.values()]
