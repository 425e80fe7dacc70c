"""Reading and writing unsigned-byte IDX files (the format MNIST ships in), gzipped or raw."""

from __future__ import annotations

import gzip
import math
import os
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mesimp.errors import DataError

_UBYTE = 0x08


def decode_idx(data: bytes, source: str | Path) -> torch.Tensor:
    """Parse uncompressed IDX bytes into a uint8 tensor; `source` names the data in error messages."""
    if len(data) < 4:
        raise DataError(f"{source}: too short for an IDX header ({len(data)} bytes)")
    zero, dtype, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or dtype != _UBYTE or ndim == 0:
        magic = struct.unpack(">I", data[:4])[0]
        raise DataError(
            f"{source}: bad IDX magic number 0x{magic:08x} "
            "(expected 0x00000801 for labels or 0x00000803 for images); not an MNIST IDX file"
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{source}: IDX header truncated ({len(data)} bytes, need {header_len})")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected, got = math.prod(dims), len(data) - header_len
    if got != expected:
        problem = "truncated" if got < expected else "trailing bytes after the data"
        raise DataError(
            f"{source}: payload is {got} bytes but header dims {list(dims)} need {expected} ({problem})"
        )
    # copy() so the tensor owns writable memory instead of aliasing the immutable bytes
    array = np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims).copy()
    return torch.from_numpy(array)


def encode_idx(tensor: torch.Tensor, *, gz: bool = False) -> bytes:
    """Serialize a uint8 tensor (at least 1-D) as IDX bytes, gzipped when `gz`."""
    if tensor.dtype != torch.uint8 or tensor.dim() == 0:
        raise ValueError(f"IDX needs a uint8 tensor of >= 1 dim, got {tensor.dtype} {tuple(tensor.shape)}")
    header = struct.pack(f">BBBB{tensor.dim()}I", 0, 0, _UBYTE, tensor.dim(), *tensor.shape)
    data = header + tensor.contiguous().numpy().tobytes()
    # mtime=0: the same tensor always gives the same bytes, so a written file's md5 can be known in advance
    return gzip.compress(data, compresslevel=6, mtime=0) if gz else data


def read_idx(path: Path, verify: Callable[[bytes, bytes], None] | None = None) -> torch.Tensor:
    """Read an IDX file (gzipped if named .gz).

    `verify(stored, data)` sees the file's bytes as stored and uncompressed before they are decoded: it raises
    DataError where they are not the file it expects (checksums).
    """
    path = Path(path)
    try:
        stored = path.read_bytes()
        data = gzip.decompress(stored) if path.suffix == ".gz" else stored
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as err:
        # gzip reports corruption as BadGzipFile (an OSError), EOFError or zlib.error
        raise DataError(f"{path}: cannot read ({err})") from None
    if verify is not None:
        verify(stored, data)
    return decode_idx(data, path)


def write_idx(path: Path, tensor: torch.Tensor) -> None:
    """Write a uint8 tensor as IDX (gzipped when the name ends in .gz), atomically."""
    path = Path(path)
    write_atomic(path, encode_idx(tensor, gz=path.suffix == ".gz"))


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash or a concurrent reader never sees a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes 0600; data should be readable like a download
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
