"""The real command line with data.name: a folder of one's own MNIST-format files trains, unverified and said so;
a named data set whose files are not the published ones stops in one line."""

import json
from pathlib import Path

import torch

from mesimp.data.idx import write_idx
from mesimp.data.mnist import NAMES
from tests.helpers import assert_one_line_error, train

FAST = ["task=mnist", "data.fetch=false", "data.train_limit=100", "epochs=1", "evals_per_epoch=1", "model.hidden=[8]"]


def fake_set(folder: Path, n_train: int = 5200, n_test: int = 200, classes: int = 10) -> None:
    """Random 28x28 images with random labels, under the four MNIST file names."""
    gen = torch.Generator().manual_seed(0)
    folder.mkdir(parents=True)
    tensors = [torch.randint(0, 256, (n_train, 28, 28), dtype=torch.uint8, generator=gen),
               torch.randint(0, classes, (n_train,), dtype=torch.uint8, generator=gen),
               torch.randint(0, 256, (n_test, 28, 28), dtype=torch.uint8, generator=gen),
               torch.randint(0, classes, (n_test,), dtype=torch.uint8, generator=gen)]
    for name, tensor in zip(NAMES, tensors):
        write_idx(folder / f"{name}.gz", tensor)


def test_own_data_set_trains_unverified(tmp_path: Path) -> None:
    fake_set(tmp_path / "data" / "custom")
    result = train(*FAST, "data.name=custom", runs=tmp_path / "runs", data=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs" / "mnist").iterdir()
    assert "data.name=custom" in run_dir.name
    assert (f"data set 'custom' has no published checksums (known: mnist, fashion_mnist, kmnist): reading "
            f"{tmp_path / 'data' / 'custom'} unverified") in (run_dir / "train.log").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train_examples"] == 100 and metrics["num_params"] == 784 * 8 + 8 + 8 * 10 + 10


def test_named_set_that_is_not_the_published_one_is_one_line(tmp_path: Path) -> None:
    fake_set(tmp_path / "data" / "fashion_mnist", n_train=5010, n_test=10)
    result = train(*FAST, "data.name=fashion_mnist", runs=tmp_path / "runs", data=tmp_path / "data")
    assert_one_line_error(result, f"{tmp_path / 'data' / 'fashion_mnist' / NAMES[0]}.gz: md5 ")
    assert "8d4fb7e6c68d591d4c3dfef9ec88bf0d" in result.stderr and "not Fashion-MNIST" in result.stderr
