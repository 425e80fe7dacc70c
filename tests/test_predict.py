"""mesimp.predict: tiny runs trained through the real command line predict their own test file, and the prediction
scores what the run reported; predictions are written into the input's own lines; bad input is one error line."""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mesimp.data.conllu_edit import DEPREL, HEAD, UPOS, XPOS, fill_columns
from mesimp.data.idx import read_idx
from mesimp.data.treebank import punct_mask, read_conll
from mesimp.export import model_data, treebank_model
from mesimp.predict import in_batches
from mesimp.tasks.parse.exported import _ud_label
from tests.helpers import assert_one_line_error, train

REPO = Path(__file__).resolve().parents[1]
EMPTY_NODE = re.compile(r"^[0-9]+\.[0-9]+\t", re.MULTILINE)
MULTIWORD = re.compile(r"^[0-9]+-[0-9]+\t", re.MULTILINE)


# ---- fixtures: small splits of UD English-EWT and a tiny run of each task ---------------------------------------

@pytest.fixture(scope="module")
def treebank(tmp_path_factory, shared_data) -> Path:
    """train/dev/test.conllu cut from EWT; the test file has multiword tokens and empty nodes among its sentences."""
    folder = tmp_path_factory.mktemp("treebank")
    source = shared_data / "ud_english_ewt"

    def sentences(split: str) -> list[str]:
        return source.joinpath(f"en_ewt-ud-{split}.conllu").read_text().split("\n\n")

    test = sentences("test")
    with_empty_nodes = [s for s in test if EMPTY_NODE.search(s)][:2]
    for split, chosen in (("train", sentences("train")[:300]), ("dev", sentences("dev")[:40]),
                          ("test", test[:40] + with_empty_nodes)):
        folder.joinpath(f"{split}.conllu").write_text("\n\n".join(chosen) + "\n\n")
    assert MULTIWORD.search(folder.joinpath("test.conllu").read_text())
    return folder


def trained_run(runs: Path, data: Path, task: str, *overrides: str) -> Path:
    result = train(f"task={task}", *overrides, "epochs=1", "threads=1", runs=runs, data=data)
    assert result.returncode == 0, result.stderr
    (metrics,) = (runs / task).glob("*/metrics.json")
    return metrics.parent


def treebank_overrides(treebank: Path) -> list[str]:
    return ["data.name=null", *(f"data.{split}={treebank / f'{split}.conllu'}" for split in ("train", "dev", "test"))]


@pytest.fixture(scope="module")
def parse_run(tmp_path_factory, shared_data, treebank) -> Path:
    return trained_run(tmp_path_factory.mktemp("runs"), shared_data, "parse", *treebank_overrides(treebank),
                       "model.hidden=[16]", "batch_size=100", "k=4")


@pytest.fixture(scope="module")
def pos_run(tmp_path_factory, shared_data, treebank) -> Path:
    return trained_run(tmp_path_factory.mktemp("runs"), shared_data, "pos", *treebank_overrides(treebank),
                       "model.hidden=[16]", "k=8")


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, shared_data) -> Path:
    return trained_run(tmp_path_factory.mktemp("runs"), shared_data, "mnist", "data.train_limit=300",
                       "model.hidden=[20]")


def predict(*args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """The command line; stdout as bytes, stderr as text."""
    result = subprocess.run([sys.executable, "-m", "mesimp.predict", *map(str, args), "--threads", "1"], input=stdin,
                            capture_output=True, cwd=REPO, timeout=120)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout, result.stderr.decode())


def predicted(model: Path, input_file: Path, out: Path) -> Path:
    result = predict(model, input_file, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"" and re.fullmatch(r"predicted \S+ sentences, \S+ tokens in \S+ s: \S+ tokens/s",
                                                 result.stderr.strip().splitlines()[-1]), result.stderr
    return out


@pytest.fixture(scope="module")
def parsed(parse_run, treebank, tmp_path_factory) -> Path:
    return predicted(parse_run, treebank / "test.conllu", tmp_path_factory.mktemp("out") / "parsed.conllu")


@pytest.fixture(scope="module")
def tagged(pos_run, treebank, tmp_path_factory) -> Path:
    return predicted(pos_run, treebank / "test.conllu", tmp_path_factory.mktemp("out") / "tagged.conllu")


def final_test(run_dir: Path) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["final_test"]


def export(run_dir: Path, out: Path) -> Path:
    result = subprocess.run([sys.executable, "-m", "mesimp.export", str(run_dir), str(out)], capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    return out


def assert_only_columns_changed(original: Path, written: Path, columns: set[int]) -> None:
    """Line for line the same text, but for ``columns`` of the word lines."""
    before, after = original.read_text().split("\n"), written.read_text().split("\n")
    assert len(before) == len(after)
    changed = 0
    for old, new in zip(before, after):
        old_cols, new_cols = old.split("\t"), new.split("\t")
        if old.startswith("#") or len(old_cols) != 10 or not old_cols[0].isdigit():
            assert new == old
            continue
        assert [c for i, c in enumerate(new_cols) if i not in columns] == \
               [c for i, c in enumerate(old_cols) if i not in columns]
        changed += new_cols != old_cols
    assert changed > 0


def blank_columns(original: Path, out: Path, columns: set[int]) -> Path:
    """A copy with ``columns`` of every word line set to ``_``: what the model predicts must not be read."""
    def blank(line: str) -> str:
        cols = line.split("\t")
        if line.startswith("#") or len(cols) != 10 or not cols[0].isdigit():
            return line
        return "\t".join("_" if i in columns else c for i, c in enumerate(cols))

    out.write_text("\n".join(map(blank, original.read_text().split("\n"))))
    return out


# ---- the three tasks ------------------------------------------------------------------------------------------

def test_parser_prediction_scores_the_runs_final_test(parse_run, parsed, treebank, tmp_path):
    gold, guess = read_conll(treebank / "test.conllu"), read_conll(parsed)
    scored = [(g == p) for gs, ps in zip(gold, guess) for g, p, punct in zip(gs.heads, ps.heads, punct_mask(gs))
              if not punct]
    assert 100.0 * sum(scored) / len(scored) == pytest.approx(final_test(parse_run), abs=0.01)
    assert_only_columns_changed(treebank / "test.conllu", parsed, {HEAD, DEPREL})
    # the exported file, reading standard input and writing standard output, on sentences without a tree
    headless = blank_columns(treebank / "test.conllu", tmp_path / "headless.conllu", {HEAD, DEPREL})
    again = predict(export(parse_run, tmp_path / "parser.pt"), "-", stdin=headless.read_bytes())
    assert again.returncode == 0, again.stderr
    assert again.stdout == parsed.read_bytes()


def test_tagger_prediction_scores_the_runs_final_test(pos_run, tagged, treebank, tmp_path):
    gold, guess = read_conll(treebank / "test.conllu"), read_conll(tagged)
    right = [g == p for gs, ps in zip(gold, guess) for g, p in zip(gs.xpos, ps.xpos)]
    assert 100.0 * sum(right) / len(right) == pytest.approx(final_test(pos_run), abs=0.01)
    assert_only_columns_changed(treebank / "test.conllu", tagged, {XPOS})
    untagged = blank_columns(treebank / "test.conllu", tmp_path / "untagged.conllu", {XPOS})
    again = predict(export(pos_run, tmp_path / "tagger.pt"), untagged, "--batch-size", "7")
    assert again.returncode == 0, again.stderr
    assert again.stdout == tagged.read_bytes()


def test_a_upos_tagger_fills_the_upos_column(pos_run, treebank):
    data = model_data(pos_run)
    data["config"]["tagset"] = "upos"
    tagger = treebank_model(data, pos_run)
    sentences = read_conll(treebank / "test.conllu")[:3]
    columns = tagger.annotate(sentences)
    assert [len(s) for s in columns] == [len(s) for s in sentences]
    assert {column for s in columns for token in s for column in token} == {UPOS}


def test_mnist_prediction_scores_the_runs_final_test(mnist_run, shared_data, tmp_path):
    images = shared_data / "mnist" / "t10k-images-idx3-ubyte.gz"
    result = predict(mnist_run, images, "-o", tmp_path / "labels.txt")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"predicted 10,000 images in \S+ s: \S+ images/s", result.stderr.strip().splitlines()[-1])
    labels = [int(line) for line in (tmp_path / "labels.txt").read_text().splitlines()]
    gold = read_idx(shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").tolist()
    assert len(labels) == len(gold) == 10_000
    assert 100.0 * sum(a == b for a, b in zip(labels, gold)) / len(gold) == pytest.approx(final_test(mnist_run),
                                                                                          abs=0.01)
    raw = predict(export(mnist_run, tmp_path / "mlp.pt"), "-", stdin=gzip.decompress(images.read_bytes()))
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == (tmp_path / "labels.txt").read_bytes()


def test_written_conllu_passes_the_ud_validator_at_level_2(parsed, tagged):
    # installed with the tests' dependencies (udtools), beside this Python: `make test` runs it without the
    # virtual environment's scripts on PATH, where a skip would pass CI with the format unchecked
    validator = shutil.which("udvalidate", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                                 os.environ.get("PATH", "")]))
    assert validator, "the UD validator is missing: pip install udtools (make install does)"
    for written in (parsed, tagged):
        result = subprocess.run([validator, "--level", "2", "--lang", "en", str(written)], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr


# ---- bad input ----------------------------------------------------------------------------------------------------

MALFORMED = "# sent_id = 1\n1\tHello\thello\tINTJ\tUH\t_\t0\troot\t_\t_\n2\tworld\n"


@pytest.mark.parametrize("case", ["mnist-model-conllu", "parser-idx", "malformed", "malformed-stdin", "no-input",
                                  "no-checkpoint", "not-a-model", "no-gpu"])
def test_bad_input_is_one_error_line(case, parse_run, mnist_run, treebank, shared_data, tmp_path):
    malformed = tmp_path / "bad.conllu"
    malformed.write_text(MALFORMED)
    images = shared_data / "mnist" / "t10k-images-idx3-ubyte.gz"
    args, stdin, fragment = {
        "mnist-model-conllu": ((mnist_run, treebank / "test.conllu"), None, "not an IDX file"),
        "parser-idx": ((parse_run, images), None, "which reads CoNLL-U"),
        "malformed": ((parse_run, malformed), None, f"{malformed}:3: expected 10 tab-separated columns, got 2"),
        "malformed-stdin": ((parse_run, "-"), MALFORMED.encode(), "<stdin>:3: expected 10 tab-separated columns"),
        "no-input": ((parse_run, tmp_path / "missing.conllu"), None, "missing.conllu: cannot read"),
        "no-checkpoint": ((tmp_path, treebank / "test.conllu"), None, f"no checkpoint at {tmp_path}"),
        "not-a-model": ((treebank / "test.conllu", treebank / "test.conllu"), None, "neither a run directory nor"),
        "no-gpu": ((mnist_run, images, "--device", "cuda"), None, "sees no CUDA GPU"),
    }[case]
    if case == "no-gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = predict(*args, "-o", tmp_path / "out", stdin=stdin)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out").exists()


# ---- the pieces -----------------------------------------------------------------------------------------------

def test_fill_columns_edits_word_lines_only_and_keeps_line_ends():
    text = ("# text = I can't\r\n1\tI\t_\tPRON\t_\t_\t_\t_\t_\t_\r\n2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_\r\n"
            "2\tca\t_\tAUX\t_\t_\t_\t_\t_\t_\r\n3\tn't\t_\tPART\t_\t_\t_\t_\t_\tSpaceAfter=No\r\n"
            "3.1\tgo\t_\tVERB\t_\t_\t_\t_\t2:x\t_\r\n\r\n")
    values = [{HEAD: "0", DEPREL: "root"}, {HEAD: "1", DEPREL: "aux"}, {XPOS: "RB"}]
    assert fill_columns(text, values) == (
        "# text = I can't\r\n1\tI\t_\tPRON\t_\t_\t0\troot\t_\t_\r\n2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_\r\n"
        "2\tca\t_\tAUX\t_\t_\t1\taux\t_\t_\r\n3\tn't\t_\tPART\tRB\t_\t_\t_\t_\tSpaceAfter=No\r\n"
        "3.1\tgo\t_\tVERB\t_\t_\t_\t_\t2:x\t_\r\n\r\n")
    with pytest.raises(ValueError, match="fewer"):
        fill_columns(text, values[:2])
    with pytest.raises(ValueError, match="more"):
        fill_columns(text, values + [{}])


def test_batches_go_biggest_first_and_results_come_back_in_order():
    seen = []

    def run(batch):
        seen.append(batch)
        return [f"item {i}" for i in batch]

    assert in_batches([1, 3, 2, 3, 1], run, batch_size=2, unit="tok") == [f"item {i}" for i in range(5)]
    assert seen == [[1, 3], [2, 0], [4]]


def test_the_ud_root_rule_follows_the_predicted_head():
    assert _ud_label(0, "nsubj") == "root"
    assert _ud_label(3, "root") == "dep"
    assert _ud_label(3, "nmod") == "nmod"


@pytest.mark.parametrize("format_name", ["mesimp-mlp-v1", "mesimp-parser-v1", "mesimp-tagger-v1"])
def test_a_malformed_export_is_one_user_error(tmp_path, format_name):
    from mesimp.errors import UserError
    from mesimp.predict import load_model

    torch.save({"format": format_name, "config": {"hidden": "wide"}}, tmp_path / "model.pt")
    with pytest.raises(UserError, match=f"malformed {format_name} file"):
        load_model(tmp_path / "model.pt", torch.device("cpu"))
