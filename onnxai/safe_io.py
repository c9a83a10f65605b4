"""Safe input and output files: every file onnxai writes goes through here, and so does every text it
takes from a model or a file and puts into a file name, a picture title or a CSV cell; the small files
a user names are read here.

- ``open_atomic`` / ``atomic_path`` / ``write_bytes`` / ``write_text``: the bytes go to a unique
  temporary made with ``tempfile.mkstemp`` (``O_EXCL``) in the destination folder, then take the
  destination's name with ``os.replace`` (or ``os.link`` when not overwriting, which fails if the
  name was taken meanwhile). A symbolic link at the destination is refused, never followed; an
  existing file is refused unless ``force``. A failure leaves nothing behind.
- ``check_destinations``: the same checks for a list of planned outputs, before any work is done;
  ``check_folder_writable``: the folder exists (or is made) and a file can be created in it.
- ``csv_cell``: a CSV cell that a spreadsheet will not run as a formula (OWASP's rule: text that
  begins with = + - @ tab or CR gets a leading quote; numbers stay numbers).
- ``clean_label``: a label from a model or a file without control characters, for titles; file
  names use it through the CLI's slug.
- ``existing_file`` / ``read_user_text`` / ``read_csv_rows``: the readers of the small text and CSV
  files a user names (labels, feature names, a hierarchy, a saved explanation's JSON; a table, a list
  of pictures): missing, a folder, unreadable, not UTF-8 or not CSV each get one line; ``file_base``:
  a path to save results under is a file name.

The library writes with ``force=True`` by default (like ``numpy.save``); the command line passes
``force`` from ``--force``.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import numbers
import os
import tempfile
import unicodedata
from pathlib import Path

from .errors import InputError

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: setting the process-wide umask around every write would leave a window in
# which files another thread creates are world-writable.
_UMASK = _read_umask()


def check_destination(path, force: bool = True) -> Path:
    """Refuse a symbolic link, a folder, or (without ``force``) an existing file at ``path``."""
    path = Path(path)
    if path.is_symlink():
        raise InputError(f"{path} is a symbolic link; onnxai never writes through one: remove it or choose "
                         "another output path")
    if path.is_dir():
        raise InputError(f"{path} is a folder; choose a file name for the output")
    if not force and path.exists():
        raise InputError(f"{path} exists; pass --force to overwrite it (force=True in Python), or choose another output path")
    return path


def check_destinations(paths, force: bool = False) -> list[Path]:
    """``check_destination`` for every path, and no path twice (two outputs would collide)."""
    seen: dict[Path, int] = {}
    out = []
    for p in paths:
        p = Path(p)
        key = Path(os.path.normcase(os.path.abspath(p)))
        if key in seen:
            raise InputError(f"two outputs would be written to {p}; this is a bug in how names are made, report it")
        seen[key] = 1
        out.append(check_destination(p, force))
    return out


def check_folder_writable(folder) -> Path:
    """Make ``folder`` (and its parents) and check a file can be created in it; an OSError says why not."""
    folder = Path(folder)
    if folder.is_symlink() and not folder.is_dir():
        raise InputError(f"{folder} is a broken symbolic link; choose another output folder")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file, not a folder; choose another output folder")
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".onnxai-probe.", dir=folder)
    os.close(fd)
    os.unlink(probe)
    return folder


@contextlib.contextmanager
def atomic_path(path, force: bool = True, suffix: str = ""):
    """Yield a fresh temporary path next to ``path`` for a writer that wants a file name; on success it
    becomes ``path`` (see the module's notes), on failure it is removed."""
    path = check_destination(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _publish(Path(tmp), path, force)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def open_atomic(path, mode: str = "wb", force: bool = True, **kw):
    """Yield a file object (``mode`` "wb" or "w"; ``kw`` go to ``open``) whose content becomes ``path``."""
    if mode not in ("wb", "w"):
        raise ValueError(f"open_atomic writes new files only (mode 'wb' or 'w'), not {mode!r}")
    with atomic_path(path, force, suffix=Path(path).suffix) as tmp:
        with open(tmp, mode, **kw) as f:
            yield f


def write_bytes(path, data: bytes, force: bool = True) -> Path:
    with open_atomic(path, "wb", force) as f:
        f.write(data)
    return Path(path)


def write_text(path, text: str, force: bool = True) -> Path:
    with open_atomic(path, "w", force, encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)


def _publish(tmp: Path, path: Path, force: bool) -> None:
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes the file private; give it the usual mode
    check_destination(path, force)  # again: a link or a file may have appeared while we wrote
    if force:
        os.replace(tmp, path)  # replaces a name; a link planted meanwhile is replaced, not followed
        return
    try:
        os.link(tmp, path)  # fails if the name exists, whatever it is: no overwrite, no following
    except FileExistsError:
        raise InputError(f"{path} appeared while it was written; pass --force to overwrite it") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        os.replace(tmp, path)  # a filesystem without hard links: the check above is what we have


# --------------------------------------------------------------------------- text that goes into outputs


def file_base(path, example: str) -> Path:
    """A path to save results under (a base name the writer adds suffixes to), checked: text or a Path,
    no NUL byte, and a file name rather than a folder ("", "/", "x/..")."""
    if not isinstance(path, (str, os.PathLike)) or "\x00" in str(path):
        raise InputError(f"results are saved under a file path (str or Path); got {path!r}")
    base = Path(path)
    if not base.name or base.name in (".", ".."):
        raise InputError(f"{str(path)!r} names a folder; give a file name, e.g. {example}")
    return base


def existing_file(path, what: str) -> Path:
    """``path`` as a Path when it names an existing file; else an InputError: missing, or a folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the {what} itself")
    return path


def read_user_text(path, what: str) -> str:
    """The text of a small UTF-8 file the user names (labels, names, a saved explanation's JSON), or an
    InputError that says what is wrong: missing, a folder, unreadable, or not UTF-8."""
    path = existing_file(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}); save the {what} as UTF-8") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None


def read_csv_rows(path, what: str, layout: str) -> list[list[str]]:
    """The non-blank rows of a UTF-8 CSV file the user names (a BOM is skipped); ``what`` names it and
    ``layout`` says what it should hold, in the errors: not UTF-8, or not readable as CSV."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}); save the {what} as UTF-8") from None
    except csv.Error as e:
        raise InputError(f"cannot read {path} as the {what} ({e}); give {layout}") from None


def csv_cell(value):
    """A value for a CSV cell: numbers (and None) as they are; text that a spreadsheet would read as a
    formula (= + - @ tab CR first) gets a leading apostrophe."""
    if value is None or isinstance(value, (bool, numbers.Number)):
        return value
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_row(row: dict) -> dict:
    return {k: csv_cell(v) for k, v in row.items()}


def clean_label(text, limit: int = 120) -> str:
    """A label fit for a title or a line of output: control characters (newlines, tabs, escapes) become
    spaces, runs of spaces one space, at most ``limit`` characters. The original stays in the JSON."""
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in str(text))
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
