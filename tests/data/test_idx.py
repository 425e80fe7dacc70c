import gzip
import struct
from pathlib import Path

import pytest
import torch

from mesimp.data.idx import encode_idx, read_idx, write_idx
from mesimp.errors import DataError


def _images(n: int = 3) -> torch.Tensor:
    return torch.arange(n * 28 * 28, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(n, 28, 28)


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    images = _images()
    labels = torch.tensor([7, 0, 9], dtype=torch.uint8)
    write_idx(tmp_path / name, images)
    write_idx(tmp_path / f"labels-{name}", labels)
    assert torch.equal(read_idx(tmp_path / name), images)
    assert torch.equal(read_idx(tmp_path / f"labels-{name}"), labels)
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left its temp file behind"


def test_gz_suffix_means_gzip(tmp_path: Path) -> None:
    write_idx(tmp_path / "x.gz", _images(1))
    write_idx(tmp_path / "x", _images(1))
    assert gzip.decompress((tmp_path / "x.gz").read_bytes()) == (tmp_path / "x").read_bytes()
    assert (tmp_path / "x").read_bytes()[:4] == b"\x00\x00\x08\x03"


def test_bad_magic_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 2) + b"\x00" * 8)  # float32 dtype byte
    with pytest.raises(DataError, match="bad-idx3-ubyte.*magic"):
        read_idx(path)


@pytest.mark.parametrize(("delta", "word"), [(-1, "truncated"), (1, "trailing")])
def test_payload_size_must_match_header(tmp_path: Path, delta: int, word: str) -> None:
    data = encode_idx(_images(2))
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(data[:-1] if delta < 0 else data + b"\x00"))
    with pytest.raises(DataError, match=f"x.gz.*{word}"):
        read_idx(path)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 2))
    with pytest.raises(DataError, match="header truncated"):
        read_idx(path)


def test_verify_sees_stored_and_uncompressed_bytes_first(tmp_path: Path) -> None:
    images = _images()
    path = tmp_path / "x.gz"
    write_idx(path, images)
    assert path.read_bytes() == encode_idx(images, gz=True)  # reproducible: no timestamp in the gzip header
    seen: list[tuple[bytes, bytes]] = []
    assert torch.equal(read_idx(path, lambda stored, data: seen.append((stored, data))), images)
    assert seen == [(path.read_bytes(), encode_idx(images))]

    def refuse(stored: bytes, data: bytes) -> None:
        raise DataError("not the file")

    with pytest.raises(DataError, match="not the file"):
        read_idx(path, refuse)


def test_corrupt_gzip_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="x.gz: cannot read"):
        read_idx(path)
    with pytest.raises(DataError, match="nope.gz: file not found"):
        read_idx(tmp_path / "nope.gz")
