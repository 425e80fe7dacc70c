"""The real command line on bad treebank files: one error line naming FILE:LINE (or the split and the file), exit
2, and nothing written but the failed run's log; data.skip_bad_trees=true trains on the good sentences."""

import json
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, train

GOOD = "1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n2\tdog\tdog\tNOUN\tNN\t_\t0\troot\t_\t_\n"
# line 6, in the second sentence: token 2 is its own head
BAD = GOOD + "\n# sent_id = 2\n1\tA\ta\tDET\tDT\t_\t2\tdet\t_\t_\n2\tcat\tcat\tNOUN\tNN\t_\t2\troot\t_\t_\n"
FAST = ["data.name=null", "epochs=1", "batch_size=4", "model.hidden=[8]"]


def splits(tmp_path: Path, **texts: str) -> list[str]:
    """data.train/dev/test overrides for files holding ``texts`` (GOOD where not given)."""
    overrides = []
    for split in ("train", "dev", "test"):
        path = tmp_path / f"{split}.conllu"
        path.write_text(texts.get(split, GOOD))
        overrides.append(f"data.{split}={path}")
    return overrides


def files(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_only_a_failed_run(runs: Path, before: dict[Path, bytes]) -> None:
    """Files there before are untouched; new are only one run directory's log and hidden bookkeeping (.hydra/,
    a lock): no metrics.json, checkpoint or TensorBoard events."""
    after = files(runs)
    assert {p: after.get(p) for p in before} == before
    new = [p.parts for p in after if p not in before]  # TASK/RUN_NAME/...
    assert len({parts[:2] for parts in new}) == 1, new
    assert all(parts[2:] == ("train.log",) or parts[2].startswith(".") for parts in new), new


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A runs directory that already holds another run's results."""
    other = tmp_path / "runs" / "parse" / "another_run"
    other.mkdir(parents=True)
    (other / "metrics.json").write_text('{"best_dev": 90.0}')
    return tmp_path / "runs"


def test_bad_tree_stops_with_file_and_line(tmp_path, runs):
    before = files(runs)
    result = train("task=parse", *FAST, *splits(tmp_path, dev=BAD), runs=runs)
    assert_one_line_error(result, f"{tmp_path / 'dev.conllu'}:6: token 2 is its own head")
    assert "data.skip_bad_trees=true" in result.stderr
    assert_only_a_failed_run(runs, before)


@pytest.mark.parametrize("task", ["parse", "pos"])
def test_empty_dev_file_names_the_split_and_file(tmp_path, runs, task):
    before = files(runs)
    result = train(f"task={task}", *FAST, *splits(tmp_path, dev="# no sentence\n"), runs=runs)
    assert_one_line_error(result, f"{tmp_path / 'dev.conllu'}: no sentences in the dev split")
    assert_only_a_failed_run(runs, before)


def test_skip_bad_trees_trains_on_the_rest(tmp_path, runs):
    result = train("task=parse", *FAST, "data.skip_bad_trees=true", *splits(tmp_path, train=BAD), runs=runs)
    assert result.returncode == 0, result.stderr
    (log,) = runs.glob("parse/*skip_bad_trees*/train.log")
    assert (f"train split: skipped 1 of 2 sentences whose heads are not a tree, the first: "
            f"{tmp_path / 'train.conllu'}:6: token 2 is its own head") in log.read_text()
    metrics = json.loads((log.parent / "metrics.json").read_text())
    assert metrics["train_examples"] == 2 * 2  # the good sentence's 2n transitions only


def test_only_bad_trees_is_an_empty_split_once_skipped(tmp_path, runs):
    bad_only = BAD.split("\n\n", 1)[1]
    result = train("task=parse", *FAST, "data.skip_bad_trees=true", *splits(tmp_path, test=bad_only), runs=runs)
    assert_one_line_error(result, f"{tmp_path / 'test.conllu'}: no sentence of the test split has heads that form "
                                  "a tree (1 skipped)")


def test_tagging_ignores_the_heads(tmp_path, runs):
    result = train("task=pos", *FAST, *splits(tmp_path, train=BAD, dev=BAD), runs=runs)
    assert result.returncode == 0, result.stderr
