"""The ablation report: baselines, grouping by rule, first-epoch scores, and its files."""

import json

import pytest

from mesimp.report.ablations import FULL, ablations, collect, dev_curve, main, setting_of, variant_of
from mesimp.report.sweep import full_backprop_job
from mesimp.report.sweep import expand


def test_every_ablation_job_has_a_full_backprop_twin():
    for name in ablations():
        for job in expand(name):
            twin = full_backprop_job(job)
            assert twin.values["k"] == "null" and "meprop.rule" not in twin.values
            assert setting_of(twin) == setting_of(job)


def test_meprops_other_settings_label_the_row_and_leave_the_baseline():
    job = expand("ablation_pos_gates")[0]
    assert variant_of(job) == "topk meprop.gates=per_gate"
    assert dict(setting_of(job)) == {"data.name": "ptb_wsj_sample"}
    assert full_backprop_job(job).name == "data.name=ptb_wsj_sample,k=null,seed=1"


def test_an_ablation_over_several_k_labels_its_rows_with_k(tmp_path):
    labels = [row.rule for row in collect("ablation_pos_gates", tmp_path)]
    assert labels == [FULL, "topk meprop.gates=per_gate k=5", "topk meprop.gates=per_gate k=10"]
    assert [row.rule for row in collect("ablation_pos_seeds", tmp_path)] == [
        FULL, "topk meprop.gates=joint", "dense_dw meprop.gates=joint"]


def fake_run(root, job, dev_by_epoch, test):
    path = job.path(root)
    path.mkdir(parents=True)
    history = [{"epoch": e, "dev": d, "step": i, "train_loss": 0.1} for i, (e, d) in enumerate(dev_by_epoch)]
    best = max(d for _, d in dev_by_epoch)
    (path / "metrics.json").write_text(json.dumps({"task": job.task, "method": "meprop", "test_at_best_dev": test,
                                                   "best_dev": best, "history": history}))


def test_report_compares_each_rule_with_full_backprop(tmp_path):
    root = tmp_path / "runs"
    jobs = expand("ablation_mnist_b100")
    rules = ["topk", "centred", "unbiased_centred"]
    seeds = len(jobs) // len(rules)
    for job in jobs:
        i = rules.index(job.values["meprop.rule"])
        fake_run(root, job, [(0.5, 90.0), (1.0, 95.0 + i)], 97.0 + i)
        twin = full_backprop_job(job)
        if not twin.path(root).exists():
            fake_run(root, twin, [(1.0, 96.0)], 98.0)
    rows = collect("ablation_mnist_b100", root)
    assert [row.rule for row in rows] == [FULL, *rules]
    with pytest.raises(SystemExit) as done:
        main(["--no-run", "--root", str(root), "--out", str(tmp_path / "out"), "--only", "ablation_mnist_b100"])
    assert done.value.code == 0
    text = (tmp_path / "out" / "ablation_mnist_b100.md").read_text()
    spread = " ± 0.00" if seeds > 1 else ""
    runs = f"{seeds}/{seeds}"
    setting = "| batch_size=100, optim.lr_schedule=constant"
    assert f"{setting} | centred | {runs} | 98.00{spread} | +0.00 | 96.00{spread} | +0.00 |" in text
    assert f"{setting} | topk | {runs} | 97.00{spread} | -1.00 | 95.00{spread} | -1.00 |" in text


def test_report_skips_and_lists_runs_with_unusable_metrics(tmp_path, capsys):
    root, out = tmp_path / "runs", tmp_path / "out"
    jobs = expand("ablation_mnist_b100")
    for job in jobs:
        fake_run(root, job, [(1.0, 95.0)], 97.0)
    topk = [job for job in jobs if job.values["meprop.rule"] == "topk"]
    for job in topk:
        (job.path(root) / "metrics.json").write_text("[]")
    out.mkdir()
    (out / "ablation_pos.md").write_text("another ablation's table\n")
    with pytest.raises(SystemExit) as done:
        main(["--no-run", "--root", str(root), "--out", str(out), "--only", "ablation_mnist_b100"])
    assert done.value.code == 0
    line = f"mnist/{topk[0].name}: skipped: unusable metrics.json: not a JSON object but an array"
    assert f"\n  {line}" in capsys.readouterr().out and f"\n- {line}" in (out / "README.md").read_text()
    text = (out / "ablation_mnist_b100.md").read_text()
    assert f"| batch_size=100, optim.lr_schedule=constant | topk | 0/{len(topk)} | – |" in text
    assert (out / "ablation_pos.md").read_text() == "another ablation's table\n"  # not selected: kept
    index = (out / "README.md").read_text()
    assert "- [ablation_pos](ablation_pos.md)\n" in index  # and still listed, without a figure it lacks
    assert "ablation_mnist_b100](ablation_mnist_b100.md)" in index and "ablation_mnist_b10]" not in index


def test_dev_curve_reads_older_runs_from_their_log(tmp_path):
    from mesimp.report.runs import RunRecord, Status

    (tmp_path / "train.log").write_text(
        "[t][mesimp.engine.trainer][INFO] - epoch 0.500 step 5: train loss 0.5, dev 80.00\n"
        "[t][mesimp.engine.trainer][INFO] - epoch 1.000 step 10: train loss 0.4, dev 85.50 (best; test 85.00)\n")
    record = RunRecord(expand("ablation_pos")[0], tmp_path, Status.finished, {})
    assert dev_curve(record) == [(0.5, 80.0), (1.0, 85.5)]
