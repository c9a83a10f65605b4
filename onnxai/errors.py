"""The one exception family of onnxai.

Every error a user can cause (a bad file, a wrong shape, a missing layer, an unavailable provider)
is raised as an ``OnnxaiError`` subclass whose message says what is wrong and what to do next.
The CLI prints the message alone and exits with status 2.
"""


class OnnxaiError(Exception):
    """Base class of every error onnxai raises on purpose."""


class ModelError(OnnxaiError):
    """The ONNX file is missing, unreadable, not ONNX, or not a classifier onnxai can run."""


class InputError(OnnxaiError):
    """An input (image, array, table row, option value) has the wrong type, shape or content."""


class LayerError(OnnxaiError):
    """A named tensor does not exist in the graph or cannot be used the way it was asked."""


class ProviderError(OnnxaiError):
    """The requested onnxruntime execution provider is not available or failed to start."""


class OutputError(OnnxaiError):
    """The model produced something unusable (NaN/inf scores, no class-score output)."""
