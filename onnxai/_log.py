"""Notes for the user on stderr, each said once per process; and a stderr catcher for C++ noise."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

_said: set[str] = set()
_quiet = bool(os.environ.get("ONNXAI_QUIET"))


def set_quiet(quiet: bool = True) -> None:
    """Silence (or restore) onnxai's notes on stderr."""
    global _quiet
    _quiet = quiet


def note(message: str) -> None:
    """Print ``onnxai: message`` on stderr, once per distinct message."""
    if _quiet or message in _said:
        return
    _said.add(message)
    print(f"onnxai: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def captured_stderr():
    """Capture what C/C++ code writes to file descriptor 2; yields a list that receives the text."""
    with captured_output(fds=(2,)) as box:
        yield box


@contextlib.contextmanager
def captured_output(fds=(1, 2)):
    """Capture what C/C++ code writes to file descriptors 1 and 2 (onnxruntime prints to both); yields
    a list that receives the text of each, in order."""
    box: list[str] = []
    # C/C++ code writes to the descriptors themselves, whatever sys.stdout/stderr are (pytest's capfd
    # and notebooks replace them by objects whose fileno(), if any, is another descriptor).
    live = []
    for fd in fds:
        try:
            os.fstat(fd)
            live.append(fd)
        except OSError:  # no such descriptor: nothing to catch there
            pass
    _flush()
    with contextlib.ExitStack() as stack:
        saved = []
        for fd in live:
            tmp = stack.enter_context(tempfile.TemporaryFile(mode="w+b"))
            saved.append((fd, os.dup(fd), tmp))
            os.dup2(tmp.fileno(), fd)
        try:
            yield box
        finally:
            _flush()
            for fd, old, tmp in saved:
                os.dup2(old, fd)
                os.close(old)
                tmp.seek(0)
                box.append(tmp.read().decode("utf-8", "replace"))


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
