"""onnxai: explain the decisions of any exported ONNX classifier.

    import onnxai
    model = onnxai.load("models/efficientnet_lite0.onnx")
    model.predict("samples/chelsea.png", top=5)
    expl = onnxai.explain(model, "samples/chelsea.png", method="lime")
"""

from ._log import set_quiet
from .api import explain
from .methods import make_method
from .errors import InputError, LayerError, ModelError, OnnxaiError, OutputError, ProviderError
from .explanation import Explanation
from .methods import (CAM, LIME, RISE, FeatureAblation, GradCAM, KernelSHAP, Occlusion, PermutationSHAP, ScoreCAM,
                      masked_topk)
from .model import InputSpec, Model, Prediction, load
from .preprocess import Preprocess, load_image
from .methods.lime_tabular import LimeTabular
from .tables import TabularExplanation
from . import metrics, report, sanity  # noqa: E402  faithfulness metrics, HTML report, randomisation check
from .metrics import evaluate
from .report import Report
from .sanity import cascading_randomisation

__version__ = "0.1.0"

__all__ = [
    "metrics",
    "report",
    "sanity",
    "evaluate",
    "Report",
    "cascading_randomisation",
    "load",
    "explain",
    "make_method",
    "Explanation",
    "LIME",
    "FeatureAblation",
    "PermutationSHAP",
    "KernelSHAP",
    "LimeTabular",
    "TabularExplanation",
    "Occlusion",
    "CAM",
    "GradCAM",
    "ScoreCAM",
    "RISE",
    "masked_topk",
    "load_image",
    "Model",
    "InputSpec",
    "Prediction",
    "Preprocess",
    "OnnxaiError",
    "ModelError",
    "InputError",
    "LayerError",
    "ProviderError",
    "OutputError",
    "set_quiet",
]
