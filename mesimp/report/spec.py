"""The vocabulary the paper's tables are written in (``mesimp.report.paper``): which runs make a row, which
metrics a table shows, and how ours and the paper's are compared."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from statistics import mean
from typing import Callable, Mapping, Optional


class Kind(Enum):
    """How a metric is compared with a row's baseline (the paper's parenthesised numbers) and with the paper."""

    accuracy = "accuracy"  # difference to the baseline (+0.31); ours minus the paper's (Δ)
    time = "time"  # speedup over the baseline (18.6x); absolute times are not comparable across machines
    size = "size"  # share of the baseline (10.2%)
    plain = "plain"  # side by side only (epochs to the best dev score)


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    kind: Kind
    read: Callable[[dict], Optional[float]]  # from one run's metrics.json
    digits: int = 2


def field_of(name: str) -> Callable[[dict], Optional[float]]:
    return lambda metrics: metrics.get(name)


def per_epoch(name: str) -> Callable[[dict], Optional[float]]:
    """The paper's times are per iteration (a pass over the training data); ours are totals over the run."""
    def read(metrics: dict) -> Optional[float]:
        total, epochs = metrics.get(name), metrics.get("epochs_run")
        return total / epochs if total is not None and epochs else None
    return read


def mean_width(metrics: dict) -> Optional[float]:
    dims = metrics.get("hidden_dims")
    return mean(dims) if dims else None


@dataclass(frozen=True)
class Runs:
    """Which runs stand behind a row: jobs of one experiment's sweep, picked by some of their overrides."""

    experiment: str
    where: tuple[str, ...] = ()  # e.g. ("k=null",): the jobs with these override values
    # instead of the picked (meSimp) runs: networks of their final widths trained from scratch (full backprop),
    # one per picked run; their widths are known only once the meSimp run has finished
    same_size: bool = False


def runs(experiment: str, *where: str, same_size: bool = False) -> Runs:
    return Runs(experiment, tuple(where), same_size)


@dataclass(frozen=True)
class Row:
    group: str  # the paper's first column: "POS-Tag (AdaGrad)"
    label: str  # the paper's model column: "meProp (k=5)"
    runs: Runs
    paper: Mapping[str, float] = field(default_factory=dict)  # metric key -> the paper's number, as printed
    baseline: Optional[str] = None  # the label of the row of the same group that this one is compared with
    # metric key -> the paper's parenthesised comparison with the baseline, as printed (not recomputed: the
    # paper's speedups come from unrounded times, and one printed difference is inconsistent with its numbers)
    paper_vs: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    name: str  # file stem of the outputs: table1.md, table1.csv
    title: str
    source: str  # where in ../shared/reference/paper.md the paper's numbers are
    metrics: tuple[Metric, ...]
    rows: tuple[Row, ...]
    notes: str = ""  # how our protocol differs from the paper's, and why


@dataclass(frozen=True)
class Series:
    """One line of a figure: runs whose metric is plotted against ``x`` of each run, beside the paper's points."""

    label: str
    runs: Runs
    x: Callable[[dict], Optional[float]]
    paper: Mapping[float, float] = field(default_factory=dict)  # x -> the paper's value, read off its figure


@dataclass(frozen=True)
class Plot:
    name: str  # file stem: fig4_left.png, fig4_left.csv
    title: str
    source: str
    xlabel: str
    metric: Metric  # the y axis
    series: tuple[Series, ...]
    baseline: Optional[Runs] = None  # drawn as a horizontal line (full backprop at h=500)
    baseline_paper: Optional[float] = None
    bench_panel: bool = False  # a second panel: the benchmark's layer backward time vs. k (Table 7's results)
    notes: str = ""
