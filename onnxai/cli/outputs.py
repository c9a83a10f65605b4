"""Output names that cannot collide, and the check of every output before the expensive work.

- ``unique_stems``: one file-name stem per input file; same-named files from different folders (or
  with different suffixes, or given twice) get disambiguated stems, compared case-insensitively
  because some filesystems are;
- ``class_part``: a class as a file-name part, its index first ("282_tiger_cat"), so labels that
  differ only in case or punctuation ("Cardigan", "cardigan") still make different files;
- ``check_outputs``: the output folder can be written to and no planned path exists (unless
  --force) or is a symbolic link; run after the first forward pass, before the methods.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..safe_io import check_destinations, check_folder_writable
from .common import slug


def unique_stems(paths) -> list[str]:
    """A stem per path, unique (case-insensitively) across the list, as short as that allows."""
    paths = [Path(p) for p in paths]

    def clashes(names):
        counts = Counter(n.lower() for n in names)
        return [counts[n.lower()] > 1 for n in names]

    stems = [p.stem or p.name or "input" for p in paths]
    for widen in (lambda p, s: f"{slug(p.parent.name) if p.parent.name else 'root'}_{s}",
                  lambda p, s: f"{s}_{slug(p.suffix) or 'none'}"):
        bad = clashes(stems)
        if not any(bad):
            return stems
        stems = [widen(p, s) if b else s for p, s, b in zip(paths, stems, bad)]
    seen: Counter = Counter()
    out = []
    for s in stems:  # the same file twice, or names that still agree: number them
        seen[s.lower()] += 1
        out.append(s if seen[s.lower()] == 1 else f"{s}_{seen[s.lower()]}")
    return out


def class_part(index: int, label: str) -> str:
    """'282_tiger_cat': the class index makes the name unique, the slug makes it readable; a class
    without a label is 'class_282'."""
    if str(label) == f"class {int(index)}":
        return f"class_{int(index)}"
    return f"{int(index)}_{slug(label)}"


def check_outputs(folder, paths, force: bool) -> None:
    """--out can be written to; no planned path is a symbolic link, exists (without --force) or repeats."""
    check_folder_writable(folder)
    check_destinations(paths, force)
