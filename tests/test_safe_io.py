"""safe_io, the one writer: what its callers rely on beyond the CLI tests (tests/cli/test_outputs.py)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

import onnx_models
import onnxai
from onnxai import safe_io
from onnxai.errors import InputError


def test_writes_never_touch_the_process_umask(tmp_path, monkeypatch):
    """The umask is process-wide: setting it around a write would let another thread's files be created
    world-writable. It is read once at import; a write must not call os.umask."""
    def forbidden(mask):
        raise AssertionError("os.umask called during a write")

    monkeypatch.setattr(os, "umask", forbidden)
    path = safe_io.write_text(tmp_path / "a.txt", "hello")
    assert path.read_text() == "hello"
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o666 & ~safe_io._UMASK  # the usual mode of a new file, not mkstemp's private 0600


def test_refuses_existing_files_without_force_and_links_always(tmp_path):
    safe_io.write_text(tmp_path / "a.txt", "one")
    with pytest.raises(InputError, match="exists"):
        safe_io.write_text(tmp_path / "a.txt", "two", force=False)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "link.txt").symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link"):
        safe_io.write_text(tmp_path / "link.txt", "evil", force=True)
    assert victim.read_text() == "keep" and (tmp_path / "a.txt").read_text() == "one"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]


def test_files_the_user_names_are_read_with_errors_that_say_what_to_fix(tmp_path):
    from onnxai.classes import read_labels

    good = tmp_path / "labels.txt"
    good.write_text("ant\nbee\n\n", encoding="utf-8")
    assert read_labels(good) == ["ant", "bee"]
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin.txt is not UTF-8 text \(byte 3: .*save the labels file as UTF-8"):
        read_labels(latin)
    with pytest.raises(InputError, match="labels file not found"):
        read_labels(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="is a folder; give the labels file itself"):
        read_labels(tmp_path)



@pytest.mark.parametrize("path, words", [("", "names a folder"), ("/", "names a folder"), ("x/..", "names a folder"),
                                         (5, "saved under a file path"), (None, "saved under a file path"),
                                         ("out/\x00x", "saved under a file path")])
def test_results_are_saved_under_a_file_name(tmp_path, path, words):
    model, _ = onnx_models.region_model()
    e = onnxai.Occlusion(window=4, stride=4).explain(model, onnx_models.region_picture())
    with pytest.raises(InputError, match=words):
        e.save(path)
    X = np.random.default_rng(0).standard_normal((2, 4))
    t = onnxai.KernelSHAP(background=X, num_samples=20).explain(onnx_models.mlp_model(4), X)
    with pytest.raises(InputError, match=words):
        t.save(path)
    with pytest.raises(InputError, match="whole number >= 0"):
        onnxai.LIME(num_samples=20, segmentation="grid", num_features=4).explain(
            model, onnx_models.region_picture()).top_features("3")
