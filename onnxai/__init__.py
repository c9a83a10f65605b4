"""onnxai: explain the decisions of any exported ONNX classifier.

    import onnxai
    model = onnxai.load("models/efficientnet_lite0.onnx")
    model.predict("samples/chelsea.png", top=5)
    expl = onnxai.explain(model, "samples/chelsea.png", method="lime")
"""

from ._log import set_quiet
from .api import explain, explain_dataset
from .errors import InputError, LayerError, ModelError, OnnxaiError, OutputError, ProviderError
from .explanation import Explanation
from .methods import METHODS, make_method, masked_topk

from .model import InputSpec, Model, Prediction, load
from .preprocess import Preprocess, load_image
from .tables import TabularExplanation
from . import metrics, report, sanity  # noqa: E402  faithfulness metrics, HTML report, randomisation check
from . import dataset  # noqa: E402  onnxai.dataset.map_array(row) on a store read in a new process
from .metrics import evaluate
from .report import Report
from .sanity import cascading_randomisation

# every registered method class at the top level (onnxai.LIME, onnxai.PermutationSHAP, ...): a new
# method needs only its file and its line in methods.METHODS
globals().update({cls.__name__: cls for cls in METHODS.values()})

__version__ = "0.1.0"

__all__ = [cls.__name__ for cls in METHODS.values()] + [
    "metrics",
    "dataset",
    "report",
    "sanity",
    "evaluate",
    "Report",
    "cascading_randomisation",
    "load",
    "explain",
    "explain_dataset",
    "make_method",
    "Explanation",
    "TabularExplanation",
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
