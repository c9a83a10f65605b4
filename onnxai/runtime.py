"""Runtime: providers, sessions, onnxruntime's noise kept off stdout and stderr.

- ``session_options``: thread count and graph optimisation level, onnxruntime's own log level quiet;
- ``resolve_providers``: "auto" (CUDA when a session really starts on it, else CPU, said once and
  why), "cpu", "cuda" (error when it cannot start), or an explicit onnxruntime provider list;
- ``make_session``: an ``InferenceSession`` with onnxruntime's C++ warnings captured, and a load
  failure turned into a ``ModelError`` that says what to do;
- ``OnnxruntimeFailure`` / ``short_error``: a failed run as one short line; ``Tail``: a session from
  an inner activation to the class scores, run in chunks.

Nothing here knows what the model computes: ``Model`` (model.py) builds on these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

import glob
import os
import re

from ._log import captured_output, note
from .errors import InputError, ModelError, OutputError, ProviderError

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_cuda_verdict: tuple[bool, str] | None = None  # cached per process: (usable, reason)


def session_options(threads: int | None = None, optimization: str = "all") -> ort.SessionOptions:
    if optimization not in _OPT_LEVELS:
        raise InputError(f"optimization must be one of {list(_OPT_LEVELS)}, not {optimization!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = _OPT_LEVELS[optimization]
    so.log_severity_level = 4  # fatal only: an error reaches the caller in the exception, which onnxai words
    if threads:
        so.intra_op_num_threads = int(threads)
    return so


def _cuda_usable(model_bytes: bytes, so: ort.SessionOptions) -> tuple[bool, str]:
    """Try a session on CUDA once per process; return (usable, reason) without printing ORT's noise."""
    global _cuda_verdict
    if _cuda_verdict is not None:
        return _cuda_verdict
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        _cuda_verdict = (False, "this onnxruntime build has no CUDA provider (install onnxruntime-gpu)")
        return _cuda_verdict
    if not gpu_driver_present():  # no NVIDIA driver: CUDA cannot start, and trying prints pages of noise
        _cuda_verdict = (False, "no NVIDIA GPU driver is present")
        return _cuda_verdict
    with captured_output() as box:  # preload_dlls and a failed CUDA session print on stdout AND stderr
        try:
            if hasattr(ort, "preload_dlls"):
                ort.preload_dlls()
        except Exception:
            pass
        try:
            s = ort.InferenceSession(model_bytes, so, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
            got = s.get_providers()
        except Exception as e:
            got, err = [], str(e)
        else:
            err = ""
    text = "".join(box) + err
    if got and got[0] == "CUDAExecutionProvider":
        _cuda_verdict = (True, "CUDA is available")
    else:
        reason = "the CUDA provider did not start"
        for marker in ("with error: ", "Require "):
            if marker in text:
                reason = text.split(marker, 1)[1].split("\n", 1)[0].strip().rstrip("\x1b[m").strip()
                break
        _cuda_verdict = (False, reason)
    return _cuda_verdict


def gpu_driver_present() -> bool:
    """An NVIDIA driver is loaded (Linux: /proc/driver/nvidia or /dev/nvidia0); on other systems, assume
    it may be."""
    if os.name != "posix" or not os.path.isdir("/proc"):
        return True
    return os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia[0-9]*"))


def resolve_providers(providers, model_bytes: bytes, so) -> tuple[list, str]:
    """-> (provider list for the session, a note saying what was chosen and why; "" when there is
    nothing worth saying, e.g. the CPU on a machine with no GPU driver)."""
    if providers is None or providers == "auto":
        ok, why = _cuda_usable(model_bytes, so)
        if ok:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"], "running on CUDA"
        if not gpu_driver_present() or "CUDAExecutionProvider" not in ort.get_available_providers():
            return ["CPUExecutionProvider"], ""  # a CPU-only machine or build: the CPU is the expected place
        return ["CPUExecutionProvider"], f"running on the CPU: a GPU driver is present but CUDA did not start ({why})"
    if providers == "cpu":
        return ["CPUExecutionProvider"], ""
    if providers == "cuda":
        ok, why = _cuda_usable(model_bytes, so)
        if not ok:
            raise ProviderError(
                f"--providers cuda was asked for but CUDA cannot be used here: {why}. Install the CUDA 13 "
                "and cuDNN 9 libraries (pip install 'onnxai[cuda]') or use --providers cpu / auto"
            )
        return ["CUDAExecutionProvider"], "running on CUDA"
    if isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    providers = list(providers)
    avail = ort.get_available_providers()
    for p in providers:
        name = p[0] if isinstance(p, tuple) else p
        if name not in avail:
            raise ProviderError(f"provider {name!r} is not in this onnxruntime build; available: {avail}")
    return providers, ""


def make_session(model_bytes: bytes, so: ort.SessionOptions, providers: list, what: str) -> ort.InferenceSession:
    """A session on ``providers``; ``what`` names the model in the error when onnxruntime refuses it."""
    try:
        with captured_output() as box:  # keep onnxruntime's own warnings (stdout and stderr) off the terminal
            session = ort.InferenceSession(model_bytes, so, providers=providers)
    except Exception as e:
        msg = str(e).split("\n")[0][:300]
        raise ModelError(
            f"onnxruntime cannot load {what}: {msg}. The file may use operators or an "
            "opset this onnxruntime does not support; re-export it with a supported opset"
        ) from None
    asked = [p[0] if isinstance(p, tuple) else p for p in providers]
    got = session.get_providers()
    if asked and asked[0] not in got:  # onnxruntime fell back (it prints an "EP Error" banner, caught above)
        said = re.search(r"\) ([^\n]*?)(?:\n| when using|$)", "".join(box))  # the reason, after the source location
        note(f"{asked[0]} did not start; running on {got[0]}" + (f" ({said.group(1)[:200]})" if said else ""))
    return session


@dataclass
class Tail:
    """A session computing class scores from an inner activation (for Grad-CAM without autograd).
    held: tensors a skip connection carries around ``layer``, fed at fixed values (``held_values``)."""

    session: ort.InferenceSession
    layer: str
    output: str
    batch_size: int
    held: tuple = ()
    held_values: dict | None = None
    columns: object = None  # (n, k) -> (n, classes), e.g. a binary classifier's one column made two

    def __call__(self, acts: np.ndarray) -> np.ndarray:
        """(n, classes) scores of a batch of activations."""
        r = self.values(acts)
        r = r.reshape(r.shape[0], -1)
        return r if self.columns is None else self.columns(r)

    def values(self, acts: np.ndarray) -> np.ndarray:
        """The tail's output as the graph shapes it, in chunks of ``batch_size``, errors wrapped."""
        acts = np.ascontiguousarray(acts, dtype=np.float32)
        name = self.session.get_inputs()[0].name
        parts = []
        for i in range(0, acts.shape[0], self.batch_size):
            chunk = acts[i:i + self.batch_size]
            feed = {name: chunk}
            for h in self.held:  # one picture's values (1, ...), repeated over the chunk
                v = self.held_values[h]
                feed[h] = np.ascontiguousarray(np.broadcast_to(v, (chunk.shape[0],) + v.shape[1:]))
            try:
                parts.append(self.session.run([self.output], feed)[0])
            except Exception as e:
                raise OutputError(f"running the model's tail from {self.layer!r} failed: {short_error(e)}") from None
        return np.concatenate(parts)


class OnnxruntimeFailure(OutputError):
    """onnxruntime raised while running the model (wrong input, unsupported op at run time)."""


def short_error(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def batch_consistent(s, name: str, shape: tuple, dtype, rtol: float = 1e-4, atol: float = 1e-5,
                     atol_scaled: bool = False, equal_nan: bool = False) -> bool:
    """Whether session ``s`` gives a batch of 2 random inputs the results of two single runs (a graph
    that normalises, softmaxes or averages over the batch axis does not); ``atol_scaled``: atol is a
    share of the outputs' largest finite value (at least 1); ``equal_nan``: a NaN matches a NaN (the
    NaN check says more). Raises what onnxruntime raises."""
    probe = np.random.default_rng(0).standard_normal((2,) + tuple(d or 8 for d in shape[1:])).astype(dtype)
    out_name = s.get_outputs()[0].name
    both = s.run([out_name], {name: probe})[0]
    one = np.concatenate([s.run([out_name], {name: probe[i:i + 1]})[0] for i in range(2)])
    if atol_scaled:
        finite = np.abs(one[np.isfinite(one)])
        atol *= max(1.0, float(finite.max())) if finite.size else 1.0
    return both.shape == one.shape and bool(np.allclose(both, one, rtol=rtol, atol=atol, equal_nan=equal_nan))


def checked_batch_session(proto, name: str, shape: tuple, dtype, make) -> tuple:
    """A session of ``proto`` (a batch-1 model rewritten to a dynamic batch) if a batch of 2 gives the
    same results as two single runs: (session, None), else (None, why not)."""
    try:
        s = make(proto.SerializeToString())
        if batch_consistent(s, name, shape, dtype):
            return s, None
        return None, "a batch of 2 gave different results than two single runs"
    except Exception as e:  # the rewrite produced a graph onnxruntime refuses
        return None, f"the rewritten graph does not run ({str(e).splitlines()[0][:120]})"
