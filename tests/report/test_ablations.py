"""The ablation report: baselines, grouping by rule, first-epoch scores, and its files."""

import json

import pytest

from mesimp.report import sweep
from mesimp.report.ablations import FULL, ablations, collect, dev_curve, main, setting_of, variant_of
from mesimp.report.sweep import expand, full_backprop_job

# The report's tests read ablations of their own, so that adding seeds or rules to a real one changes no test.
SWEEP = """\
# @package _global_
hydra:
  sweeper:
    params:
{}
"""
RULES = ["topk", "centred", "unbiased_centred"]
MNIST = "ablation_fixture"
ABLATIONS = {
    # MNIST, three rules over two seeds: the report's table
    MNIST: {"task": "mnist", "batch_size": 100, "optim.lr_schedule": "constant", "k": 20,
            "meprop.rule": ",".join(RULES), "seed": "1,2"},
    # the tagger, two k with one of meProp's other settings; and two rules at one k
    "ablation_fixture_k": {"task": "pos", "data.name": "ptb_wsj_sample", "k": "5,10", "meprop.rule": "topk",
                           "meprop.gates": "per_gate", "seed": "1,2"},
    "ablation_fixture_rules": {"task": "pos", "data.name": "ptb_wsj_sample", "k": 5, "meprop.gates": "joint",
                               "meprop.rule": "topk,dense_dw", "seed": "1,2"},
    # two more, for the report's index: one with a table already written, one without
    "ablation_other": {"task": "mnist", "k": 10, "seed": 1},
    "ablation_untabled": {"task": "mnist", "k": 40, "seed": 1},
}


@pytest.fixture
def experiments(tmp_path, monkeypatch):
    """The experiment directory the report reads: :data:`ABLATIONS` only."""
    directory = tmp_path / "experiment"
    directory.mkdir()
    for name, params in ABLATIONS.items():
        (directory / f"{name}.yaml").write_text(SWEEP.format("\n".join(f"      {k}: {v}" for k, v in params.items())))
    monkeypatch.setattr(sweep, "EXPERIMENT_DIR", directory)


def test_every_ablation_job_has_a_full_backprop_twin():  # the real ones
    for name in ablations():
        for job in expand(name):
            twin = full_backprop_job(job)
            assert twin.values["k"] == "null" and "meprop.rule" not in twin.values
            assert setting_of(twin) == setting_of(job)


def test_meprops_other_settings_label_the_row_and_leave_the_baseline(experiments):
    job = expand("ablation_fixture_k")[0]
    assert variant_of(job) == "topk meprop.gates=per_gate"
    assert dict(setting_of(job)) == {"data.name": "ptb_wsj_sample"}
    assert full_backprop_job(job).name == "data.name=ptb_wsj_sample,k=null,seed=1"


def test_an_ablation_over_several_k_labels_its_rows_with_k(tmp_path, experiments):
    labels = [row.rule for row in collect("ablation_fixture_k", tmp_path)]
    assert labels == [FULL, "topk meprop.gates=per_gate k=5", "topk meprop.gates=per_gate k=10"]
    assert [row.rule for row in collect("ablation_fixture_rules", tmp_path)] == [
        FULL, "topk meprop.gates=joint", "dense_dw meprop.gates=joint"]


def fake_run(root, job, dev_by_epoch, test):
    path = job.path(root)
    path.mkdir(parents=True)
    history = [{"epoch": e, "dev": d, "step": i, "train_loss": 0.1} for i, (e, d) in enumerate(dev_by_epoch)]
    best = max(d for _, d in dev_by_epoch)
    (path / "metrics.json").write_text(json.dumps({"task": job.task, "method": "meprop", "test_at_best_dev": test,
                                                   "best_dev": best, "history": history}))


def test_report_compares_each_rule_with_full_backprop(tmp_path, experiments):
    root = tmp_path / "runs"
    jobs = expand(MNIST)
    assert len(jobs) == len(RULES) * 2
    for job in jobs:
        i = RULES.index(job.values["meprop.rule"])
        fake_run(root, job, [(0.5, 90.0), (1.0, 95.0 + i)], 97.0 + i)
        twin = full_backprop_job(job)
        if not twin.path(root).exists():
            fake_run(root, twin, [(1.0, 96.0)], 98.0)
    rows = collect(MNIST, root)
    assert [row.rule for row in rows] == [FULL, *RULES]  # one k: the rows are not labelled with it
    with pytest.raises(SystemExit) as done:
        main(["--no-run", "--root", str(root), "--out", str(tmp_path / "out"), "--only", MNIST])
    assert done.value.code == 0
    text = (tmp_path / "out" / f"{MNIST}.md").read_text()
    setting = "| batch_size=100, optim.lr_schedule=constant"
    assert f"{setting} | centred | 2/2 | 98.00 ± 0.00 | +0.00 | 96.00 ± 0.00 | +0.00 |" in text
    assert f"{setting} | topk | 2/2 | 97.00 ± 0.00 | -1.00 | 95.00 ± 0.00 | -1.00 |" in text


def test_report_skips_and_lists_runs_with_unusable_metrics(tmp_path, capsys, experiments):
    root, out = tmp_path / "runs", tmp_path / "out"
    jobs = expand(MNIST)
    for job in jobs:
        fake_run(root, job, [(1.0, 95.0)], 97.0)
    topk = [job for job in jobs if job.values["meprop.rule"] == "topk"]
    for job in topk:
        (job.path(root) / "metrics.json").write_text("[]")
    out.mkdir()
    (out / "ablation_other.md").write_text("another ablation's table\n")
    with pytest.raises(SystemExit) as done:
        main(["--no-run", "--root", str(root), "--out", str(out), "--only", MNIST])
    assert done.value.code == 0
    line = f"mnist/{topk[0].name}: skipped: unusable metrics.json: not a JSON object but an array"
    assert f"\n  {line}" in capsys.readouterr().out and f"\n- {line}" in (out / "README.md").read_text()
    text = (out / f"{MNIST}.md").read_text()
    assert "| batch_size=100, optim.lr_schedule=constant | topk | 0/2 | – |" in text
    assert (out / "ablation_other.md").read_text() == "another ablation's table\n"  # not selected: kept
    index = (out / "README.md").read_text()
    assert "- [ablation_other](ablation_other.md)\n" in index  # and still listed, without a figure it lacks
    assert f"[{MNIST}]({MNIST}.md)" in index and "ablation_untabled" not in index  # no table


def test_dev_curve_reads_older_runs_from_their_log(tmp_path, experiments):
    from mesimp.report.runs import RunRecord, Status

    (tmp_path / "train.log").write_text(
        "[t][mesimp.engine.trainer][INFO] - epoch 0.500 step 5: train loss 0.5, dev 80.00\n"
        "[t][mesimp.engine.trainer][INFO] - epoch 1.000 step 10: train loss 0.4, dev 85.50 (best; test 85.00)\n")
    record = RunRecord(expand("ablation_fixture_rules")[0], tmp_path, Status.finished, {})
    assert dev_curve(record) == [(0.5, 80.0), (1.0, 85.5)]
