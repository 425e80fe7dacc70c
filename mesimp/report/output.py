"""A report's output folder, replaced all at once.

The report is written into a new folder beside the old one and swapped in only when it is complete, so a
report that stops midway (an error, ^C) leaves the previous folder exactly as it was: never a mix of new and
stale tables. A file of the old folder that this build did not write (a published run copy, the tables of an
ablation not selected this time, a note added by hand) is carried over unchanged, so a rebuild deletes nothing.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def build_then_swap(out: Path, build: Callable[[Path], T]) -> T:
    """``build(folder)`` writes the whole report into ``folder``; then that folder becomes ``out``."""
    out = out.resolve()  # a link to the folder stays a link: the folder it points to is replaced
    out.parent.mkdir(parents=True, exist_ok=True)
    new = _beside(out, "new")
    new.mkdir()
    try:
        result = build(new)
        _carry_over(out, new)
        _swap(new, out)
    finally:
        shutil.rmtree(new, ignore_errors=True)  # only there when the build or the swap failed
    return result


def _beside(out: Path, kind: str) -> Path:
    # hidden, and unique: two reports into the same folder do not share their work space
    return out.with_name(f".{out.name}.{kind}-{uuid.uuid4().hex[:8]}")


def _carry_over(old: Path, new: Path) -> None:
    if not old.is_dir():
        return
    for path in old.rglob("*"):
        target = new / path.relative_to(old)
        if path.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _swap(new: Path, out: Path) -> None:
    if not out.exists():
        new.rename(out)
        return
    old = _beside(out, "old")
    out.rename(old)
    try:
        new.rename(out)
    except BaseException:
        old.rename(out)
        raise
    shutil.rmtree(old)
