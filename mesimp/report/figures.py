"""The figures: their numbers as CSV always, and as PNG where matplotlib (the ``report`` extra) is installed."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev
from typing import Optional

from omegaconf import OmegaConf

from mesimp.report.aggregate import collect
from mesimp.report.bench import TABLE7, BenchFile, results_of
from mesimp.report.render import write_csv
from mesimp.report.runs import RunRecord
from mesimp.report.spec import Plot, Runs
from mesimp.report.sweep import Extras

DIMS_FIGURE = "mesimp_dims"


def have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    return plt


@dataclass(frozen=True)
class Point:
    series: str
    setting: str
    x: Optional[float]  # None when no run of the point has finished
    mean: Optional[float]
    std: Optional[float]
    n: int
    expected: int
    missing: str  # why the unfinished runs have no numbers
    paper: Optional[float] = None


BASELINE = "full backprop, h=500"


def points(plot: Plot, root: Path, extras: Extras) -> list[Point]:
    lines = [(series.label, series.runs, series.x, series.paper) for series in plot.series]
    if plot.baseline:
        lines.append((BASELINE, plot.baseline, lambda metrics: None, {}))
    found = []
    for label, runs, read_x, paper in lines:
        for setting, records in collect(runs, root, extras):
            done = [r for r in records if r.finished]
            xs = [x for r in done if (x := read_x(r.metrics)) is not None]
            ys = [y for r in done if (y := plot.metric.read(r.metrics)) is not None]
            x = mean(xs) if xs else None
            found.append(Point(label, setting, x, mean(ys) if ys else None, stdev(ys) if len(ys) > 1 else None,
                               len(ys), len(records), "; ".join(sorted({r.reason for r in records if not r.finished})),
                               _paper_at(paper, x)))
    return found


def _paper_at(paper: dict, x: Optional[float]) -> Optional[float]:
    """The paper's value at this x: its figures' x values are ratios rounded to whole percents."""
    return next((value for px, value in paper.items() if x is not None and abs(px - x) < 0.5), None)


def write_plot(plot: Plot, found: list[Point], out: Path, draw: bool, bench: list[BenchFile]) -> list[Path]:
    csv_path = out / f"{plot.name}.csv"
    write_csv(csv_path, [{"figure": plot.name, "series": p.series, "setting": p.setting, "x": p.x,
                          "ours_mean": p.mean, "ours_std": p.std, "runs": p.n, "runs_expected": p.expected,
                          "paper": p.paper, "missing": p.missing} for p in found])
    if not draw:
        return [csv_path]
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if plot.bench_panel else 1, figsize=(11 if plot.bench_panel else 6, 4.2),
                             squeeze=False)
    _draw_series(axes[0][0], plot, found)
    if plot.bench_panel:
        _draw_bench(axes[0][1], bench)
    return [csv_path, _save(fig, out / f"{plot.name}.png")]


def _draw_series(ax, plot: Plot, found: list[Point]) -> None:
    for index, series in enumerate(plot.series):
        color = f"C{index}"
        mine = sorted((p for p in found if p.series == series.label and p.mean is not None and p.x is not None),
                      key=lambda p: p.x)
        ax.errorbar([p.x for p in mine], [p.mean for p in mine], yerr=[p.std or 0.0 for p in mine], marker="o",
                    color=color, capsize=3, label=f"{series.label} (ours)")
        if series.paper:
            xs = sorted(series.paper)
            ax.plot(xs, [series.paper[x] for x in xs], "s--", mfc="none", color=color, alpha=0.7,
                    label=f"{series.label} (paper, approx.)")
    base = [p.mean for p in found if p.series == BASELINE and p.mean is not None]
    if base:
        ax.axhline(mean(base), color="gray", label=f"{BASELINE} (ours)")
    if plot.baseline_paper is not None:
        ax.axhline(plot.baseline_paper, color="gray", linestyle="--", label=f"{BASELINE} (paper)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.metric.title)
    ax.set_title(plot.title, fontsize=10)
    ax.legend(fontsize=7)


def _draw_bench(ax, bench: list[BenchFile]) -> None:
    """One layer's backward time vs. k in the benchmark, each device and shape a line, over the paper's (GPU)."""
    for file in bench:
        shapes: dict[tuple, list[dict]] = {}
        for r in results_of(TABLE7, file):
            shapes.setdefault((r["batch"], r["in_features"], r["out_features"], r["scope"]), []).append(r)
        for (batch, n_in, n_out, scope), results in shapes.items():
            results.sort(key=lambda r: r["k"])
            line, = ax.plot([r["k"] for r in results], [r["meprop_ms"] for r in results], "o-",
                            label=f"{file.device}: meProp, {scope}, {batch}x{n_in}->{n_out}")
            ax.axhline(mean(r["dense_ms"] for r in results), color=line.get_color(), linestyle=":",
                       label=f"{file.device}: dense")
    ks = sorted(TABLE7.paper)
    ax.plot(ks, [TABLE7.paper[k] for k in ks], "s--", mfc="none", color="black", label="paper (GPU): meProp")
    ax.axhline(TABLE7.paper_baseline, color="black", linestyle="--", alpha=0.5, label="paper (GPU): dense")
    if not bench:
        ax.text(0.5, 0.5, "no benchmark results", transform=ax.transAxes, ha="center")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("backward time (ms)")
    ax.set_title("One linear layer's backward (benchmark)", fontsize=10)
    ax.legend(fontsize=6)


def write_dims(panels: tuple[tuple[str, Runs, float], ...], root: Path, extras: Extras, out: Path,
               draw: bool) -> list[Path]:
    """meSimp's hidden widths after every simplification step, per task, beside the paper's final average."""
    records, drawn = [], []
    for title, runs, paper_width in panels:
        lines = []
        for setting, run_records in collect(runs, root, extras):
            for record in run_records:
                seed = record.job.values.get("seed", "")
                metrics = record.metrics or {}
                if not (metrics.get("hidden_dims") and metrics.get("steps") and metrics.get("epochs_run")):
                    records.append({"task": title, "setting": setting, "seed": seed, "epoch": None, "layer": None,
                                    "width": None, "missing": record.reason or "no widths in metrics.json"})
                    continue
                steps_per_epoch = metrics["steps"] / metrics["epochs_run"]
                history = [{"step": 0, "dims": _configured_widths(record)}, *metrics.get("dims_history", [])]
                for layer in range(len(metrics["hidden_dims"])):
                    xs = [entry["step"] / steps_per_epoch for entry in history]
                    ys = [entry["dims"][layer] for entry in history]
                    lines.append((f"{setting}{f' seed {seed}' if seed else ''}, layer {layer + 1}", xs, ys))
                    records += [{"task": title, "setting": setting, "seed": seed, "epoch": x, "layer": layer + 1,
                                 "width": y, "missing": ""} for x, y in zip(xs, ys)]
        drawn.append((title, lines, paper_width))
    csv_path = out / f"{DIMS_FIGURE}.csv"
    write_csv(csv_path, records)
    if not draw:
        return [csv_path]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(drawn), figsize=(5 * len(drawn), 4.2), squeeze=False)
    for ax, (title, lines, paper_width) in zip(axes[0], drawn):
        for label, xs, ys in lines:
            ax.step(xs, ys, where="post", label=label)
        ax.axhline(paper_width, color="black", linestyle="--", label=f"paper: final average {paper_width}")
        if not lines:
            ax.text(0.5, 0.5, "no finished runs", transform=ax.transAxes, ha="center")
        ax.set_xlabel("epoch")
        ax.set_ylabel("hidden units")
        ax.set_title(f"meSimp: {title}", fontsize=10)
        ax.legend(fontsize=6)
    return [csv_path, _save(fig, out / f"{DIMS_FIGURE}.png")]


def _configured_widths(record: RunRecord) -> list[int]:
    """The widths the run started with, from its resolved config (metrics.json has only the final ones)."""
    try:
        return list(OmegaConf.load(record.path / ".hydra" / "config.yaml").model.hidden)
    except Exception:  # an unreadable config must not stop the report: start the steps at the first record
        history = record.metrics.get("dims_history") or [{"dims": record.metrics["hidden_dims"]}]
        return list(history[0]["dims"])


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
