"""The aggregator on a sweep folder written here: finished, failed, interrupted, unreadable and missing runs,
a meSimp run with and without its same-size twin, benchmark files good and bad."""

import csv
import json
import subprocess
import sys

import pytest

from mesimp.metrics_file import METRICS, InvalidMetrics, read_metrics
from mesimp.report import build as build_module, reproduce
from mesimp.report.__main__ import main as report_main
from mesimp.report.build import build
from mesimp.report.runs import Status, load_run
from mesimp.report.sweep import expand, same_size_job
from tests.helpers import assert_one_line_error

LOG = "[2026-11-25 10:00:00,000][{name}][{level}] - {message}\n"


def metrics_for(job, test, **extra):
    values = job.values
    metrics = {"task": job.task, "method": "meprop",
               "k": None if values.get("k", "null") == "null" else int(values["k"]),
               "seed": int(values.get("seed", 1)), "best_dev": test + 0.1, "test_at_best_dev": test,
               "best_dev_epoch": 10.0, "epochs_run": 20, "steps": 110_000, "backprop_time_s": 200.0,
               "backward_time_s": 300.0, "forward_time_s": 100.0, "train_time_s": 450.0, "final_test": test - 0.1,
               "hidden_dims": [500, 500], "dims_history": [], "finished_at": "2026-11-25T10:00:00+00:00",
               "machine": "x86_64 test", "threads": 1, "torch": "2.13.0", "code_version": "abc1234"}
    return {**metrics, **extra}


def write_run(root, job, metrics=None, log="", hidden=(500, 500)):
    run = job.path(root)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(f"task: {job.task}\nmodel:\n  hidden: {list(hidden)}\n")
    (run / "train.log").write_text(LOG.format(name="mesimp.runner", level="INFO", message="start") + log)
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    return run


CONSTANT = {"optim.lr_schedule": "constant"}  # the paper's rows (MNIST's default is cosine)


def jobs(experiment, **where):
    return [job for job in expand(experiment) if all(job.values.get(k) == v for k, v in where.items())]


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "runs"
    full = jobs("table1_adam_mnist_full", **CONSTANT)
    for job, test in zip(full, (98.0, 98.2, 98.4)):
        write_run(root, job, metrics_for(job, test, backprop_time_s=400.0))
    meprop = jobs("table1_adam_mnist", **{"meprop.rule": "topk"}, **CONSTANT)
    write_run(root, meprop[0], metrics_for(meprop[0], 98.5, backprop_time_s=20.0))
    write_run(root, meprop[1], log=LOG.format(name="__main__", level="ERROR", message="error: k=20 is boom"))
    write_run(root, meprop[2], log=LOG.format(name="mesimp.engine.trainer", level="INFO",
                                              message="epoch 3.500 step 19250: train loss 0.1"))
    # an unexpected exception: the log's ERROR line, then the traceback
    adagrad = jobs("table1_adagrad_mnist", **{"meprop.rule": "topk"}, **CONSTANT)
    write_run(root, adagrad[0], log=LOG.format(name="__main__", level="ERROR", message="run failed")
              + "Traceback (most recent call last):\n  File x\nRuntimeError: out of memory\n")
    # a run that failed once and was restarted: it is running again, not failed
    write_run(root, adagrad[1], log=LOG.format(name="__main__", level="ERROR", message="error: flaky")
              + LOG.format(name="mesimp.runner", level="INFO", message="mnist meprop: k=10"))
    run = write_run(root, adagrad[2])
    (run / "metrics.json").write_text("{not json")
    # parsing on EWT only; an older metrics.json without the forward time
    parse = jobs("table1_adam_parse_full", **{"data.name": "ud_english_ewt"})[0]
    metrics = metrics_for(parse, 80.8, hidden_dims=[500, 500])
    del metrics["forward_time_s"]
    write_run(root, parse, metrics)
    # meSimp: seed 1 with its same-size twin, seed 2 without, seed 3 not run
    mesimp = jobs("readme_b_mnist_mesimp")
    history = [{"step": 69, "dims": [400, 300]}, {"step": 138, "dims": [300, 200]}]
    for job in mesimp[:2]:
        write_run(root, job, metrics_for(job, 98.1, hidden_dims=[300, 200], dims_history=history, epochs_run=20,
                                         steps=11_000))
    twin = same_size_job(mesimp[0], [300, 200])
    write_run(root, twin, metrics_for(twin, 97.9, hidden_dims=[300, 200]), hidden=(300, 200))
    bench = root / "bench"
    bench.mkdir()
    layer = {"group": "layer", "batch": 1024, "in_features": 8192, "out_features": 8192, "scope": "batch",
             "dense_ms": 1000.0, "ideal": 0.0}
    (bench / "cpu.json").write_text(json.dumps({"machine": "x86_64 test", "device": "cpu", "threads": 2,
                                                "torch": "2.13.0", "results": [
        {**layer, "k": 8, "select": "topk", "meprop_ms": 20.0, "ratio": 50.0, "ideal": 1024.0},
        {**layer, "k": 16, "select": "topk", "meprop_ms": 25.0, "ratio": 40.0, "ideal": 512.0},
        {**layer, "k": 16, "select": "random", "meprop_ms": 99.0, "ratio": 1.0, "ideal": 512.0},
        {**layer, "k": 20, "select": "topk", "meprop_ms": 30.0, "ratio": 33.0, "ideal": 400.0},
        {"group": "layer", "k": 32},  # incomplete: skipped
    ]}))
    (bench / "gpu.json").write_text("{broken")
    return root


def read_csv(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_tables_put_ours_beside_the_paper_with_reasons_for_missing_cells(sweep, tmp_path):
    out = tmp_path / "out"
    summary = build(sweep, out)
    table1 = (out / "table1.md").read_text()
    mlp = next(line for line in table1.splitlines() if line.startswith("| MNIST (Adam) | MLP (h=500)"))
    # mean ± sample std over 3 seeds, the paper's number, and ours minus the paper's
    assert "| 3/3 |" in mlp and "98.20 ± 0.20 | 97.82 | +0.38 |" in mlp
    meprop = next(line for line in table1.splitlines() if line.startswith("| MNIST (Adam) | meProp (k=20)"))
    assert "1/3: " in meprop and "failed: error: k=20 is boom (seed 2)" in meprop
    assert "incomplete (interrupted or running; rerun resumes): epoch 3.500 step 19250" in meprop
    # speedup over the baseline row on the same data, as the paper prints its own (21.4x)
    assert "1.0 (20.0x) | 7.9 (21.4x)" in meprop and "98.50 (+0.30) | 98.01 (+0.19) | +0.49" in meprop
    adagrad = next(line for line in table1.splitlines() if line.startswith("| MNIST (AdaGrad) | meProp (k=10)"))
    assert "failed: run failed: RuntimeError: out of memory (seed 1)" in adagrad
    assert "incomplete (interrupted or running; rerun resumes): mnist meprop: k=10 (seed 2)" in adagrad
    assert "skipped: unusable metrics.json: not valid JSON" in adagrad and "| missing |" in adagrad
    assert "| POS-Tag (Adam) | LSTM (h=500) | WSJ sample | 0/1: not run | missing |" in table1
    assert ("- `mnist/k=20,meprop.rule=topk,optim.lr_schedule=constant,seed=2` (MNIST (Adam), meProp (k=20)): "
            "failed: error: k=20 is boom") in table1

    rows = read_csv(out / "table1.csv")
    test = next(r for r in rows if r["task"] == "MNIST (Adam)" and r["model"] == "meProp (k=20)"
                and r["metric"] == "test")
    assert (test["runs"], test["runs_expected"], test["paper"], test["paper_vs_baseline"]) == \
        ("1", "3", "98.01", "0.19")
    assert float(test["delta"]) == pytest.approx(0.49) and float(test["ours_vs_baseline"]) == pytest.approx(0.30)

    # a metric the run does not have is a missing cell, not an error
    table2 = (out / "table2.md").read_text()
    parse = next(line for line in table2.splitlines() if line.startswith("| Parsing (Adam) | MLP (h=500) | EWT"))
    assert "| 1/1 | missing | 3,906 | 15.0 | 9,114 |" in parse

    readme_b = (out / "readme_b.md").read_text()
    same = next(line for line in readme_b.splitlines() if "| MNIST (minibatch 100) | same size, from scratch" in line)
    assert "| 1/3: not run (seed 2); waits for its meSimp run (not run) (seed 3) |" in same
    assert "| 250 (100.0%) | - | 97.90 (-0.20) | - | - | 97.80 (-0.20) |" in same
    mesimp = next(line for line in readme_b.splitlines() if "| MNIST (minibatch 100) | meSimp top-160" in line)
    assert "| 2/3: not run (seed 3) | 250 ± 0 | 154 (30.8%) |" in mesimp

    table7 = (out / "table7.md").read_text()
    assert "| cpu | 1024 | 8192 -> 8192 | batch | 8 | 1,000.00 | 20.00 (50.0x) | 1024x | 8.37 (36.8x) |" in table7
    assert "| 16 |" in table7 and "99.00" not in table7 and "| 20 |" not in table7
    assert "`gpu.json`: unreadable" in table7
    assert "missing: `cpu.json`: no complete results of group 'mlp'" in (out / "table8.md").read_text()

    sources = {row["run"]: row for row in read_csv(out / "sources.csv")}
    baseline = sources["mnist/k=null,optim.lr_schedule=constant,seed=1"]
    assert baseline["status"] == "finished"
    assert baseline["used_in"].split() == ["table1", "table2", "readme_a", "fig4_left", "backprop_time_vs_k"]
    assert sources["mnist/k=20,meprop.rule=topk,optim.lr_schedule=constant,seed=2"]["status"] == "failed"
    assert summary.finished == 8
    index = (out / "README.md").read_text()
    assert f"Runs: 8 of {len(summary.runs)} finished" in index and "x86_64 test, torch 2.13.0" in index


def test_figures_are_drawn_or_skipped_with_their_numbers_kept(sweep, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    build(sweep, out)
    for name in ("fig4_left", "fig4_middle", "fig4_right", "backprop_time_vs_k", "mesimp_dims"):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.csv").exists()
    left = read_csv(out / "fig4_left.csv")
    k20 = next(row for row in left if row["setting"] == "MNIST (k=20)")
    assert (k20["x"], k20["ours_mean"], k20["runs"], k20["paper"]) == ("4.0", "98.5", "1", "98.0")
    dims = [row for row in read_csv(out / "mesimp_dims.csv") if row["seed"] == "1" and row["layer"] == "1"]
    assert [(float(r["epoch"]), int(r["width"])) for r in dims] == [(0.0, 500), (69 / 550, 400), (138 / 550, 300)]

    monkeypatch.setattr(build_module, "have_matplotlib", lambda: False)
    bare = tmp_path / "bare"
    summary = build(sweep, bare)
    assert "fig4_left.png" in summary.figures_skipped and not list(bare.glob("*.png"))
    assert (bare / "fig4_left.csv").exists() and "matplotlib is not installed" in (bare / "README.md").read_text()


def test_copy_runs_publishes_config_and_log_of_finished_runs(sweep, tmp_path):
    out = tmp_path / "out"
    build(sweep, out, copy_runs=True)
    run = out / "runs" / "mnist" / "k=null,optim.lr_schedule=constant,seed=1"
    assert {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()} == {
        "metrics.json", ".hydra/config.yaml", "train.log"}
    assert not (out / "runs" / "mnist" / "k=20,meprop.rule=topk,optim.lr_schedule=constant,seed=2").exists()
    assert (out / "bench" / "cpu.json").exists()


def test_empty_root_gives_a_report_of_missing_cells(tmp_path):
    (tmp_path / "runs").mkdir()
    summary = build(tmp_path / "runs", tmp_path / "out")
    assert summary.finished == 0 and summary.runs
    assert all(record.status is Status.missing for record in summary.runs.values())


def test_log_reasons(tmp_path):
    job = jobs("table3_mnist")[0]
    assert load_run(tmp_path, job).reason == "not run"
    run = write_run(tmp_path, job)
    (run / "train.log").write_text("")
    assert load_run(tmp_path, job).status is Status.incomplete


@pytest.mark.parametrize("args,fragment", [
    (["-m", "mesimp.report", "--root", "/nonexistent/runs"], "no sweep root at /nonexistent/runs"),
    (["-m", "mesimp.report", "--root", ".", "parsing:k=1"], "unknown task in 'parsing:k=1'"),
    (["-m", "mesimp.report.reproduce", "--only", "table9", "--dry-run"], "unknown experiment 'table9'"),
    (["-m", "mesimp.report.reproduce", "--launcher", "pbs", "--dry-run"], "unknown launcher 'pbs'"),
])
def test_bad_input_is_one_line(args, fragment):
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)
    assert_one_line_error(result, fragment)


@pytest.mark.parametrize("content,reason", [
    ('{"task": "mnist", "method": "meprop", "best_d', "not valid JSON"),  # truncated
    ("[]", "not a JSON object but an array"),
    ('"x"', "not a JSON object but a string"),
    ('{"task": "mnist", "best_dev": 98.0}', "no method, test_at_best_dev"),
])
def test_read_metrics_says_why_a_file_cannot_be_used(tmp_path, content, reason):
    path = tmp_path / METRICS
    path.write_text(content)
    with pytest.raises(InvalidMetrics, match=reason):
        read_metrics(path)
    job = jobs("table3_mnist")[0]
    write_run(tmp_path, job).joinpath(METRICS).write_text(content)
    record = load_run(tmp_path, job)
    assert record.status is Status.invalid and record.reason.startswith("skipped: unusable metrics.json: " + reason)


def test_runs_with_unusable_metrics_are_skipped_and_listed(sweep, tmp_path, capsys):
    full = jobs("table1_adam_mnist_full", **CONSTANT)
    valid = json.dumps(metrics_for(full[0], 98.0))
    for job, content in zip(full, (valid[:40], "[]", '"x"')):
        (job.path(sweep) / METRICS).write_text(content)
    out = tmp_path / "out"
    report_main(["--root", str(sweep), "--out", str(out)])
    printed = capsys.readouterr().out
    index = (out / "README.md").read_text()
    reasons = ("not valid JSON", "not a JSON object but an array", "not a JSON object but a string")
    for job, reason in zip(full, reasons):
        line = f"{job.task}/{job.name}: skipped: unusable metrics.json: {reason}"
        assert f"\n  {line}" in printed and f"\n- {line}" in index
    assert "report: 4 run(s) skipped:" in printed  # with the fixture's own broken file
    mlp = next(line for line in (out / "table1.md").read_text().splitlines()
               if line.startswith("| MNIST (Adam) | MLP (h=500)"))
    assert "| 0/3: skipped: unusable metrics.json: not valid JSON" in mlp and "| missing |" in mlp


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_report_that_stops_midway_leaves_the_old_folder_as_it_was(sweep, tmp_path, monkeypatch):
    out = tmp_path / "out"
    build(sweep, out, copy_runs=True)
    before = snapshot(out)
    (jobs("table1_adam_mnist_full", **CONSTANT)[0].path(sweep) / METRICS).write_text("[]")  # new tables would differ

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(build_module, "write_dims", broken)  # after every table is written
    with pytest.raises(RuntimeError, match="disk full"):
        build(sweep, out, copy_runs=True)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "runs"]  # no work folder left behind


def test_a_rebuild_replaces_what_it_writes_and_keeps_the_rest(sweep, tmp_path):
    out = tmp_path / "out"
    build(sweep, out, copy_runs=True)
    (out / "NOTES.md").write_text("by hand\n")
    run = jobs("table1_adam_mnist_full", **CONSTANT)[0]
    (run.path(sweep) / METRICS).write_text("[]")
    build(sweep, out)  # no --copy-runs: the published copies stay
    assert (out / "NOTES.md").read_text() == "by hand\n"
    assert (out / "runs" / run.task / run.name / METRICS).is_file() and (out / "bench" / "cpu.json").is_file()
    assert "skipped: unusable metrics.json" in (out / "table1.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "runs"]


def test_a_launcher_without_its_extra_is_one_line(monkeypatch, capsys):
    # no Hydra plugin installed at all: find_spec of a dotted name then fails on its parent package
    monkeypatch.setitem(reproduce.LAUNCHER_PLUGINS, "local", "no_such_plugins.hydra_joblib_launcher")
    with pytest.raises(SystemExit) as done:
        reproduce.main(["--dry-run", "--only", "table3_mnist"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "Traceback" not in err
    assert err.splitlines() == ['error: the local launcher needs its Hydra plugin: pip install -e ".[sweep]" '
                                "(or --launcher basic: one run at a time)"]
