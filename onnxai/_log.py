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
    box: list[str] = []
    # C/C++ code writes to descriptor 2 itself, whatever sys.stderr is (pytest's capfd and notebooks
    # replace sys.stderr by an object whose fileno(), if any, is another descriptor).
    fd = 2
    try:
        os.fstat(fd)
    except OSError:  # no descriptor 2 at all: nothing to catch
        yield box
        return
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield box
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, OSError, ValueError):
                pass
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            box.append(tmp.read().decode("utf-8", "replace"))
