"""Atomic writes: an interrupted run never leaves a half-written checkpoint or metrics file."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None:  # a failed write names no file: name the one being written
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_bytes(data: bytes | memoryview) -> Callable[[Path], None]:
    """One plain write, so a full disk is an OSError naming the file (torch.save into a file meets it as a C++
    RuntimeError), then synced, so the rename never publishes data still in the page cache."""
    def to(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    return to


def write_text(path: Path, text: str) -> None:
    _atomic(path, _write_bytes(text.encode()))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    """The parsed file; ValueError (with the file's name) when it is not valid JSON."""
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def save_checkpoint(path: Path, data: dict) -> None:
    buffer = io.BytesIO()
    torch.save(data, buffer)
    _atomic(path, _write_bytes(buffer.getbuffer()))


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
