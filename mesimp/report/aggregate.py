"""From a table's rows to the runs behind them: one line per row and setting (dataset), over its seeds.

Every run a row needs is listed, finished or not, so a missing number always comes with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev
from typing import Optional

from omegaconf import OmegaConf

from mesimp.report.runs import RunRecord, Status, load_run
from mesimp.report.spec import Metric, Row, Runs
from mesimp.report.sweep import CONFIG_DIR, Extras, Job, expand, same_size_job

DATASETS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "kmnist": "KMNIST", "ud_english_ewt": "EWT",
            "ptb_wsj_sample": "WSJ sample"}


@dataclass(frozen=True)
class Stat:
    mean: float
    std: Optional[float]  # None for a single run
    n: int


@dataclass(frozen=True)
class Line:
    """A row of the paper on one setting (dataset), with every run it needs (one per seed)."""

    row: Row
    setting: str
    records: tuple[RunRecord, ...]

    def stat(self, metric: Metric) -> Optional[Stat]:
        values = [v for r in self.records if r.finished and (v := metric.read(r.metrics)) is not None]
        if not values:
            return None
        return Stat(mean(values), stdev(values) if len(values) > 1 else None, len(values))

    @property
    def finished(self) -> int:
        return sum(r.finished for r in self.records)

    @property
    def missing(self) -> list[RunRecord]:
        return [r for r in self.records if not r.finished]


def collect(runs: Runs, root: Path, extras: Extras) -> list[tuple[str, list[RunRecord]]]:
    """(setting, records) for the runs of one row or series, in sweep order."""
    jobs = [job for job in expand(runs.experiment, extras) if _matches(job, runs.where)]
    groups: dict[tuple[str, ...], list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(o for o in job.overrides if not o.startswith("seed=")), []).append(job)
    settings = _settings(list(groups))
    return [(settings[key], [_record(job, root, runs.same_size) for job in group]) for key, group in groups.items()]


def lines(row: Row, root: Path, extras: Extras) -> list[Line]:
    return [Line(row, setting, tuple(records)) for setting, records in collect(row.runs, root, extras)]


def _record(job: Job, root: Path, same_size: bool) -> RunRecord:
    record = load_run(root, job)
    if not same_size:
        return record
    if not record.finished:
        return RunRecord(job, record.path, Status.missing,
                         reason=f"waits for its meSimp run ({record.reason})")
    if not record.metrics.get("hidden_dims"):
        return RunRecord(job, record.path, Status.failed, reason="its meSimp run's metrics.json has no hidden_dims")
    return load_run(root, same_size_job(job, record.metrics["hidden_dims"]))


def _matches(job: Job, where: tuple[str, ...]) -> bool:
    values = job.values
    return all(values.get(key) == value for key, value in (w.split("=", 1) for w in where))


def _settings(keys: list[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Name each group of jobs by its dataset, plus whatever else tells groups with the same dataset apart."""
    names = {key: _dataset(dict(o.split("=", 1) for o in key)) for key in keys}
    for key in keys:
        twins = [other for other in keys if names[other] == names[key]]
        shared = set.intersection(*(set(other) for other in twins))
        extra = [o for o in key if o not in shared and not o.startswith("data.")]
        if extra:
            names[key] = f"{names[key]} ({', '.join(extra)})"
    return names


def _dataset(values: dict[str, str]) -> str:
    if values.get("data.train", "null") != "null":
        return f"own data ({Path(values['data.train']).name})"
    name = values.get("data.name") or _task_dataset(values.get("task", "mnist"))
    return DATASETS.get(name, name)


def _task_dataset(task: str) -> str:
    name = OmegaConf.select(OmegaConf.load(CONFIG_DIR / "task" / f"{task}.yaml"), "data.name")
    return name or task
