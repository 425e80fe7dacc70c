"""``make ablations``: the per-example weight-gradient rules side by side (issue 15), from real runs.

    python -m mesimp.report.ablations [--root runs] [--out results/ablations] [--no-run] [--jobs 2]
                                      [--only NAME,...] [--copy-runs]

Each ablation is an experiment (``configs/experiment/ablation_*.yaml``) whose jobs differ in ``meprop.rule``;
every job also gets a full-backprop baseline (its overrides with ``k=null`` and no rule). Missing runs are run
first (Hydra multirun, resumable, as ``make reproduce-tables`` does), then one Markdown + CSV table per ablation
(mean ± std over seeds of the test score at the best dev score, its difference to full backprop, and the dev
score after the first epoch) and one figure of dev over training for every rule.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev

from mesimp.engine.io import write_json
from mesimp.report.build import RUN_FILES
from mesimp.errors import UserError
from mesimp.report.figures import have_matplotlib
from mesimp.report.render import write_csv
from mesimp.report.reproduce import Reproduction, parse_args as reproduce_args, run_command
from mesimp.report.output import build_then_swap
from mesimp.report.runs import LOG, RunRecord, load_run, skipped, skipped_markdown
from mesimp.report.sweep import Job, describes_method, expand, experiment_names, full_backprop_job

PREFIX = "ablation_"
DEFAULT_ROOT = Path(os.environ.get("MESIMP_RUNS") or "runs")  # the runner's own root: runs shared with the paper grid
DEFAULT_OUT = Path("results") / "ablations"
FULL = "full backprop"
PROGRESS = re.compile(r"epoch (?P<epoch>[\d.]+) step (?P<step>\d+): train loss (?P<loss>\S+), dev (?P<dev>[\d.]+)")


def ablations() -> list[str]:
    return [name for name in experiment_names() if name.startswith(PREFIX)]


def setting_of(job: Job) -> tuple[tuple[str, str], ...]:
    """What a table row compares within: every override but the method's (:func:`describes_method`) and the seed."""
    return tuple((k, v) for k, v in sorted(job.values.items())
                 if k not in ("seed", "task") and not describes_method(k))


def variant_of(job: Job) -> str:
    """A row's label within its setting: the rule, then meProp's other settings and the simplification settings
    where there are any (k labels it only where an ablation sweeps several: :func:`collect`)."""
    extra = [f"{k}={v}" for k, v in sorted(job.values.items())
             if k not in ("k", "k_ratio", "meprop.rule") and describes_method(k)]
    return " ".join([job.values.get("meprop.rule", "topk"), *extra])


def dev_curve(record: RunRecord) -> list[tuple[float, float]]:
    """(epoch, dev) of every evaluation, from metrics.json's history or, for older runs, the train.log."""
    history = (record.metrics or {}).get("history")
    if history:
        return [(h["epoch"], h["dev"]) for h in history]
    log = record.path / LOG
    if not log.is_file():
        return []
    # a resumed run logs its evaluations again from the checkpoint on: the last value per epoch wins
    points = {float(m["epoch"]): float(m["dev"]) for m in map(PROGRESS.search, log.read_text().splitlines()) if m}
    return sorted(points.items())


def dev_after_epoch(curve: list[tuple[float, float]], epoch: float = 1.0) -> float | None:
    return next((dev for at, dev in curve if abs(at - epoch) < 1e-6), None)


@dataclass
class Row:
    setting: tuple[tuple[str, str], ...]
    rule: str  # FULL for the baseline
    records: list[RunRecord]

    def values(self, read) -> list[float]:
        return [v for v in (read(r) for r in self.records if r.finished) if v is not None]


def _summary(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{mean(values):.2f} ± {stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def _delta(values: list[float], base: list[float]) -> str:
    return f"{mean(values) - mean(base):+.2f}" if values and base else "–"


def collect(name: str, root: Path) -> list[Row]:
    rows: dict[tuple, Row] = {}
    jobs = expand(name)
    several_k = len({job.values.get("k") for job in jobs}) > 1  # then k labels the row too
    for job in jobs:
        setting = setting_of(job)
        variant = f"{variant_of(job)} k={job.values['k']}" if several_k else variant_of(job)
        for rule, j in ((FULL, full_backprop_job(job)), (variant, job)):
            row = rows.setdefault((setting, rule), Row(setting, rule, []))
            if all(r.path != j.path(root) for r in row.records):
                row.records.append(load_run(root, j))
    return list(rows.values())


def test_score(record: RunRecord) -> float | None:
    return record.metrics.get("test_at_best_dev")


def first_epoch_dev(record: RunRecord) -> float | None:
    return dev_after_epoch(dev_curve(record))


def diagnostics_summary(record: RunRecord) -> str:
    """Per layer: the weight gradient's mean cosine to the exact one over training, and the dead units at the end."""
    found = (record.metrics or {}).get("diagnostics") or {}
    return "; ".join(f"{layer}: cos {mean(d['cosine']):.2f}, dead {d['dead_fraction'][-1]:.2f}"
                     for layer, d in found.items() if d.get("cosine"))


def render(name: str, rows: list[Row]) -> tuple[list[str], list[dict]]:
    header = ["setting", "rule", "runs", "test at best dev", "Δ test vs full", "dev after epoch 1",
              "Δ dev@1 vs full", "best dev"]
    diagnosed = any(diagnostics_summary(r) for row in rows for r in row.records if r.finished)
    header += ["diagnostics (first run)"] if diagnosed else []
    shrunk = any("simplify" in row.rule for row in rows)
    header += ["final hidden (first run)"] if shrunk else []
    base = {row.setting: row for row in rows if row.rule == FULL}
    table = []
    for row in rows:
        full = base.get(row.setting)
        tests, firsts = row.values(test_score), row.values(first_epoch_dev)
        table.append([
            ", ".join(f"{k}={v}" for k, v in row.setting) or "defaults", row.rule,
            f"{sum(r.finished for r in row.records)}/{len(row.records)}", _summary(tests),
            "" if row.rule == FULL else _delta(tests, full.values(test_score) if full else []),
            _summary(firsts),
            "" if row.rule == FULL else _delta(firsts, full.values(first_epoch_dev) if full else []),
            _summary(row.values(lambda r: r.metrics.get("best_dev"))),
        ] + ([next((diagnostics_summary(r) for r in row.records if r.finished), "")] if diagnosed else [])
          + ([next((str(r.metrics.get("hidden_dims")) for r in row.records if r.finished), "")] if shrunk else []))
    lines = [f"# {name}", "", f"Runs: `python -m mesimp.train -m +experiment={name}` "
             "(full-backprop baselines: the same overrides with `k=null`); mean ± std over seeds; "
             "a missing run shows in the runs column.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table]
    for row in rows:
        missing = [f"{r.path.name}: {r.reason}" for r in row.records if not r.finished]
        lines += [f"- not finished: {m}" for m in missing]
    return lines, [dict(zip(header, cells)) for cells in table]


def plot(name: str, rows: list[Row], out: Path) -> Path | None:
    """Dev score over training, one panel per setting, one line per rule (the first seed's run)."""
    if not have_matplotlib():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(row.setting for row in rows))
    variants = list(dict.fromkeys(row.rule for row in rows))
    colours = {variant: f"C{i % 10}" for i, variant in enumerate(variants)}  # one colour per rule in every panel
    fig, axes = plt.subplots(1, len(settings), figsize=(5.5 * len(settings), 4), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        bests = []
        for row in (r for r in rows if r.setting == setting):
            finished = [r for r in row.records if r.finished]
            curve = dev_curve(finished[0]) if finished else []
            if curve:
                ax.plot(*zip(*curve), label=row.rule, linewidth=1.2, color=colours[row.rule])
                bests.append(max(dev for _, dev in curve))
        ax.set_title(", ".join(f"{k}={v}" for k, v in setting) or name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("dev score (%)")
        if bests:  # every rule's best in view; the first evaluations of a slow start may fall below
            ax.set_ylim(max(0.0, min(bests) - 5), max(bests) + 2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def copy_runs(rows: list[Row], root: Path, out: Path) -> None:
    """Each finished run's numbers, config and log beside the tables (as the paper report publishes its runs)."""
    for record in (r for row in rows for r in row.records if r.finished):
        dest = out / "runs" / record.path.relative_to(root)
        for name in RUN_FILES:
            if (record.path / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(record.path / name, dest / name)


def report(names: list[str], root: Path, out: Path, publish: bool = False) -> list[str]:
    """Write every ablation's table, figure and curves into out (replaced whole); returns the skipped runs."""
    return build_then_swap(out, lambda folder: _write(names, root, folder, publish, previous=out))


def _write(names: list[str], root: Path, out: Path, publish: bool, previous: Path) -> list[str]:
    records = []
    for name in names:
        rows = collect(name, root)
        records += [r for row in rows for r in row.records]
        if publish:
            copy_runs(rows, root, out)
        lines, table = render(name, rows)
        (out / f"{name}.md").write_text("\n".join(lines) + "\n")
        write_csv(out / f"{name}.csv", table)
        plot(name, rows, out)
        write_json(out / f"{name}.curves.json", {
            f"{','.join(f'{k}={v}' for k, v in row.setting)}|{row.rule}|{r.path.name}": dev_curve(r)
            for row in rows for r in row.records if r.finished})
    found = skipped(records)
    # An --only report keeps the other ablations' files (build_then_swap carries them over): list those too.
    index = ["# Ablations: per-example weight-gradient rules", "",
             "Written by `python -m mesimp.report.ablations`; every run's metrics.json, config and train.log are "
             "under runs/.", ""]
    for name in ablations():
        if name in names or (previous / f"{name}.md").exists():
            figure = ((out if name in names else previous) / f"{name}.png").exists()
            index += [f"- [{name}]({name}.md)" + (f" ([figure]({name}.png))" if figure else "")]
    (out / "README.md").write_text("\n".join(index + skipped_markdown(found)) + "\n")
    return found


def run_missing(names: list[str], root: Path, jobs: int) -> None:
    """Every missing ablation and baseline run, through the reproduction's resumable sweeps."""
    args = reproduce_args(["--root", str(root), "--jobs", str(jobs), "--only", ",".join(names)])
    reproduction = Reproduction(args)
    reproduction.check_data()
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        reproduction.sweep(name)
        baselines = {full_backprop_job(job) for job in expand(name)}
        for job in sorted(baselines, key=lambda j: j.name):
            if not load_run(root, job).finished:
                reproduction.launch(f"full backprop for {name}", "1 run", [*reproduction.hydra_args(),
                                                                             *job.overrides],
                                    log_name=f"baseline.{job.task}.{job.name}")
    if reproduction.failed:
        raise UserError(f"failed: {', '.join(reproduction.failed)} (logs in {root / 'logs'})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mesimp.report.ablations", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", help="comma-separated ablation experiments (default: every ablation_*)")
    parser.add_argument("--no-run", action="store_true", help="only write the report from the runs there are")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--copy-runs", action="store_true",
                        help="copy each run's metrics.json, config and train.log under OUT/runs/")
    args = parser.parse_args(argv)

    def run() -> int:
        names = [n.strip() for n in args.only.split(",")] if args.only else ablations()
        unknown = [n for n in names if n not in ablations()]
        if unknown:
            raise UserError(f"unknown ablation {unknown[0]!r}; known: {', '.join(ablations())}")
        if not args.no_run:
            run_missing(names, args.root.resolve(), args.jobs)
        found = report(names, args.root, args.out, publish=args.copy_runs)
        print(f"ablations: {len(names)} ablation(s) written to {args.out}")
        if found:
            print(f"ablations: {len(found)} run(s) skipped:", *found, sep="\n  ")
        return 0

    run_command(run)

if __name__ == "__main__":
    main()
