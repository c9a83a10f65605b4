"""What every command shares: errors -> one line and an exit status, the model options and
open_model, file-name slugs, and the names of methods a command was given.

Errors a user can cause print one line (what is wrong, what to do) and exit with status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import sys

import click

from ..errors import InputError, OnnxaiError


class State:
    """Set once by the ``main`` group from its flags."""
    debug = False


def fail(message: str, code: int = 2):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def note(message: str) -> None:
    """A note on stderr (silenced by --quiet), said every time: CliRunner runs many commands in one process."""
    from .. import _log

    if not _log._quiet:
        click.echo(f"note: {message}", err=True)


def os_error_line(e: OSError) -> str:
    """'No space left on device (ENOSPC): out/x.png; free some space or choose another --out'."""
    import errno

    code = errno.errorcode.get(e.errno or 0, "")
    what = f"{e.strerror or e}" + (f" ({code})" if code else "")
    where = f": {e.filename}" if e.filename else ""
    hints = {errno.ENOSPC: "free some space or choose another --out", errno.EROFS: "choose a writable --out",
             errno.EACCES: "check the permissions or choose another path", errno.EPERM: "check the permissions",
             errno.EDQUOT: "free some space or choose another --out"}
    hint = hints.get(e.errno, "check the path")
    return f"{what}{where}; {hint}"


def handle_errors(fn):
    """Turn OnnxaiError (and a few OS errors) into one clear line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OnnxaiError as e:
            if State.debug:
                raise
            fail(str(e))
        except OSError as e:  # the user's environment (read-only, full disk, no permission): one line, status 2
            if State.debug:
                raise
            fail(os_error_line(e))
        except MemoryError:
            if State.debug:
                raise
            fail("out of memory; lower --batch-size or the number of samples")
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as e:  # a bug of ours: say so, briefly
            if State.debug:
                raise
            fail(f"internal error ({type(e).__name__}: {e}); rerun with --debug for the traceback and report it", 1)

    return wrapper


MODEL_KEYS = ("providers", "batch_size", "output_name", "labels_file", "resize", "crop", "mean", "std", "scale",
              "channels", "layout", "threads", "max_pixels")


def model_options(fn):
    """Options shared by every command that loads a model."""
    opts = [
        click.option("--providers", default="auto", show_default=True,
                     help="auto (CUDA if it really starts, else CPU), cpu, cuda, or a comma list of onnxruntime providers."),
        click.option("--batch-size", type=click.IntRange(1), default=None,
                     help="Inputs per forward pass (default 32 on CPU, 64 on CUDA)."),
        click.option("--output", "output_name", default=None, help="Name of the class-score output (default: first float (batch, classes) output)."),
        click.option("--labels", "labels_file", type=click.Path(dir_okay=False), default=None,
                     help="Class names: a text file with one per line, or a JSON list (default: from the model's metadata)."),
        click.option("--resize", type=click.IntRange(0), default=None,
                     help="Resize the shorter side to this many pixels before cropping (0: no resize, crop only)."),
        click.option("--size", "--crop", "crop", type=click.IntRange(1), default=None, help="Centre-crop side = model input size."),
        click.option("--mean", default=None, help="Per-channel mean after scaling, e.g. 0.485,0.456,0.406."),
        click.option("--std", default=None, help="Per-channel std, e.g. 0.229,0.224,0.225."),
        click.option("--scale", type=float, default=None, help="Multiply 0..255 pixels by this first (1/255 default)."),
        click.option("--channels", type=click.Choice(["RGB", "BGR", "L"]), default=None,
                     help="Channel order the model expects; L: one grey channel (the picture's luma)."),
        click.option("--layout", type=click.Choice(["NCHW", "NHWC"]), default=None, help="Axis order of the model input."),
        click.option("--threads", type=click.IntRange(1), default=None, help="onnxruntime intra-op threads."),
        click.option("--max-pixels", type=click.IntRange(0), default=None,
                     help="Refuse pictures with more pixels than this (a guard against decompression bombs; "
                          "default 100,000,000; 0: no limit)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def open_model(model_path, providers="auto", batch_size=None, output_name=None, labels_file=None, resize=None,
               crop=None, mean=None, std=None, scale=None, channels=None, layout=None, threads=None, max_pixels=None):
    from ..model import load
    from ..preprocess import DEFAULT_MAX_PIXELS, parse_floats

    overrides = dict(resize=resize, crop=crop, mean=parse_floats(mean, what="--mean"),
                     std=parse_floats(std, what="--std"), scale=scale, channels=channels, layout=layout)
    return load(model_path, providers=providers, batch_size=batch_size, output=output_name,
                preprocess=overrides, labels=labels_file, threads=threads,
                max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else (max_pixels or None))


def split_model_kwargs(kwargs: dict) -> dict:
    """Pop the model options out of a command's keyword arguments."""
    return {k: kwargs.pop(k) for k in MODEL_KEYS if k in kwargs}


def slug(text: str) -> str:
    """A class label as a file-name part: lower case, [a-z0-9_], at most 40 characters."""
    keep = "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")
    while "__" in keep:
        keep = keep.replace("__", "_")
    return keep[:40] or "class"


def method_names(methods: str) -> list[str]:
    """"all" -> every registered picture method; otherwise the comma list as given (kernel_shap = kernel-shap)."""
    from ..methods import METHODS

    names = [m.strip().lower().replace("_", "-") for m in methods.split(",") if m.strip()]
    if "all" in names:
        pictures = [n for n, cls in METHODS.items() if cls.inputs != "tables"]
        names = list(dict.fromkeys([n for n in names if n != "all"] + pictures))
    if not names:
        raise InputError("no method given; use --method lime, a comma list, or all")
    return names
