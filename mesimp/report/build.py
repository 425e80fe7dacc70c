"""Write the whole report for a sweep root: every table (Markdown + CSV), every figure (CSV + PNG), where each
number came from (sources.csv), and an index. A partial sweep gives a partial report, never an error; a run
whose metrics.json cannot be used is skipped and listed. The folder is replaced whole (``output``)."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mesimp.errors import UserError
from mesimp.report import paper
from mesimp.report.aggregate import collect, lines
from mesimp.report.bench import BENCH_DIR, BENCH_TABLES, load_bench_files, render_bench
from mesimp.report.figures import DIMS_FIGURE, have_matplotlib, points, write_dims, write_plot
from mesimp.report.output import build_then_swap
from mesimp.report.render import render_table, write, write_csv
from mesimp.report.runs import RunRecord, skipped, skipped_markdown
from mesimp.report.spec import Runs
from mesimp.report.sweep import Extras

SOURCES = "sources.csv"
# what a published run keeps: its numbers, resolved config and overrides, and log (not checkpoints or events)
RUN_FILES = ("metrics.json", ".hydra/config.yaml", ".hydra/overrides.yaml", "train.log")


@dataclass
class Summary:
    runs: dict[Path, RunRecord] = field(default_factory=dict)  # every run the report needs, by directory
    figures_skipped: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # 'task/run: reason' for each unusable metrics.json

    @property
    def finished(self) -> int:
        return sum(r.finished for r in self.runs.values())


def every_runs() -> list[tuple[str, Runs]]:
    """(table or figure, runs) for everything the report shows."""
    found = [(table.name, row.runs) for table in paper.TABLES for row in table.rows]
    for plot in paper.PLOTS:
        found += [(plot.name, series.runs) for series in plot.series]
        found += [(plot.name, plot.baseline)] if plot.baseline else []
    found += [(DIMS_FIGURE, runs) for _, runs, _ in paper.MESIMP_DIMS]
    return found


def experiments() -> list[str]:
    """Every experiment the report reads, in the order of the tables and figures."""
    return list(dict.fromkeys(runs.experiment for _, runs in every_runs()))


def build(root: Path, out: Path, extras: Extras = Extras(), copy_runs: bool = False) -> Summary:
    if not root.is_dir():
        raise UserError(f"no sweep root at {root} (run the sweeps first: make reproduce-tables)")
    return build_then_swap(out, lambda folder: _build(root, folder, extras, copy_runs))


def _build(root: Path, out: Path, extras: Extras, copy_runs: bool) -> Summary:
    summary = Summary()
    for table in paper.TABLES:
        table_lines = [line for row in table.rows for line in lines(row, root, extras)]
        write(render_table(table, table_lines), out)
    bench = load_bench_files(root)
    for table in BENCH_TABLES:
        write(render_bench(table, bench, root), out)
    draw = have_matplotlib()
    for plot in paper.PLOTS:
        write_plot(plot, points(plot, root, extras), out, draw, bench)
    write_dims(paper.MESIMP_DIMS, root, extras, out, draw)
    if not draw:
        summary.figures_skipped = [f"{plot.name}.png" for plot in paper.PLOTS] + [f"{DIMS_FIGURE}.png"]
    used_in: dict[Path, list[str]] = {}
    seen: list[RunRecord] = []
    for name, runs in every_runs():
        for _, records in collect(runs, root, extras):
            seen += records
            for record in records:
                summary.runs.setdefault(record.path, record)
                used_in.setdefault(record.path, [])
                if name not in used_in[record.path]:
                    used_in[record.path].append(name)
    summary.skipped = skipped(seen)
    _write_sources(summary, used_in, root, out / SOURCES)
    if copy_runs:
        _copy_runs(summary, root, out)
        _copy_bench(root, out)
    _write_index(summary, root, out, extras)
    return summary


def announce(summary: Summary, out: Path) -> None:
    """The report's last words on the console: how many runs it found, and what it had to leave out."""
    print(f"report: {summary.finished} of {len(summary.runs)} runs finished; tables and figures in {out}")
    if summary.skipped:
        print(f"report: {len(summary.skipped)} run(s) skipped:", *summary.skipped, sep="\n  ")
    if summary.figures_skipped:
        print(f"report: matplotlib is not installed, figures not drawn: {', '.join(summary.figures_skipped)}",
              file=sys.stderr)


def _write_sources(summary: Summary, used_in: dict[Path, list[str]], root: Path, path: Path) -> None:
    rows = []
    for run_dir, record in summary.runs.items():
        metrics = record.metrics or {}
        rows.append({"run": str(run_dir.relative_to(root)), "used_in": " ".join(used_in[run_dir]),
                     "status": record.status.value, "reason": record.reason,
                     **{key: metrics.get(key) for key in ("finished_at", "machine", "threads", "torch",
                                                          "code_version", "train_time_s")}})
    write_csv(path, rows)


def _copy_runs(summary: Summary, root: Path, out: Path) -> None:
    for run_dir, record in summary.runs.items():
        if not record.finished:
            continue
        dest = out / "runs" / run_dir.relative_to(root)
        for name in RUN_FILES:
            if (run_dir / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(run_dir / name, dest / name)


def _copy_bench(root: Path, out: Path) -> None:
    for path in sorted((root / BENCH_DIR).glob("*.json")):
        (out / BENCH_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, out / BENCH_DIR / path.name)


def _write_index(summary: Summary, root: Path, out: Path, extras: Extras) -> None:
    done = [r.metrics for r in summary.runs.values() if r.finished]
    dates = sorted(m["finished_at"] for m in done if m.get("finished_at"))
    machines = sorted({f"{m.get('machine')}, torch {m.get('torch')}, {m.get('threads')} thread(s)" for m in done})
    cpu_hours = sum(m.get("train_time_s") or 0.0 for m in done) / 3600
    files = sorted(p.name for p in out.iterdir() if p.suffix in (".md", ".png"))  # all of this build's
    lines_ = [
        "# The paper's tables and figures, from our runs", "",
        f"Written {datetime.now(timezone.utc).isoformat(timespec='seconds')} by `python -m mesimp.report` from the "
        f"sweep root `{root}`" + (f" with the overrides `{' '.join(extras.overrides)}`" if extras.overrides else "")
        + ".", "",
        f"- Runs: {summary.finished} of {len(summary.runs)} finished; the others show as missing cells with the "
        "reason (each table lists them).",
        f"- Finished between {dates[0]} and {dates[-1]}." if dates else "- No run has finished yet.",
        *[f"- Machine: {machine}" for machine in machines],
        f"- Training time in the runs (forward, backward, update; evaluation excluded): {cpu_hours:.1f} h.",
        f"- Where each number came from: `{SOURCES}` (run directory, status, machine, date, code version)"
        + ("; each finished run's metrics, resolved config and log are under `runs/`." if (out / "runs").is_dir()
           else "."), "",
        *[f"- [{name}]({name})" for name in files],
        *skipped_markdown(summary.skipped),
    ]
    if summary.figures_skipped:
        lines_ += ["", f"Figures not drawn (matplotlib is not installed; `pip install -e \".[report]\"`): "
                       f"{', '.join(summary.figures_skipped)}. Their numbers are in the CSV files beside them."]
    (out / "README.md").write_text("\n".join(lines_) + "\n")
