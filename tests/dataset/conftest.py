import pytest

import onnx_models


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """onnx_models.dataset_files in a session folder (models, pictures, a table, a background)."""
    return onnx_models.dataset_files(tmp_path_factory.mktemp("dataset"))
