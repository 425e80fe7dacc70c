"""What became of one expected run: its metrics, or why there are none.

A finished run has ``metrics.json`` (written atomically at the end); one that cannot be used (truncated, not an
object, keys missing) makes the run invalid: the reports skip it and list it with the reason. Without it the run
directory tells the rest: a failed run logged its error in ``train.log`` (``mesimp.train`` logs every failure
there); an interrupted or still running one ends its log on a progress line; no directory at all means the run
never started.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterable

from mesimp.metrics_file import METRICS, InvalidMetrics, read_metrics
from mesimp.report.sweep import Job

LOG = "train.log"
LOG_LINE = re.compile(r"^\[[^\]]*\]\[[^\]]*\]\[(?P<level>[A-Z]+)\] - (?P<message>.*)$")
MAX_REASON = 160


class Status(Enum):
    finished = "finished"
    failed = "failed"
    invalid = "invalid"  # its metrics.json cannot be used: skipped
    incomplete = "incomplete"  # interrupted, or still running: running the same sweep again resumes it
    missing = "missing"  # never started


@dataclass(frozen=True)
class RunRecord:
    job: Job
    path: Path
    status: Status
    metrics: dict | None = None
    reason: str = ""  # why there are no metrics; empty when finished

    @property
    def finished(self) -> bool:
        return self.status is Status.finished


def load_run(root: Path, job: Job) -> RunRecord:
    path = job.path(root)
    metrics_path = path / METRICS
    if metrics_path.is_file():
        try:
            return RunRecord(job, path, Status.finished, read_metrics(metrics_path))
        except (OSError, InvalidMetrics) as err:
            return RunRecord(job, path, Status.invalid, reason=_short(f"skipped: unusable {METRICS}: {err}"))
    if not path.is_dir():
        return RunRecord(job, path, Status.missing, reason="not run")
    status, reason = _reason_from_log(path / LOG)
    return RunRecord(job, path, status, reason=reason)


def skipped(records: Iterable[RunRecord]) -> list[str]:
    """'task/run: reason' for each run whose metrics.json could not be used, once each."""
    return list(dict.fromkeys(f"{r.job.task}/{r.job.name}: {r.reason}" for r in records
                              if r.status is Status.invalid))


def skipped_markdown(lines: list[str]) -> list[str]:
    """The report index's section on the skipped runs; nothing when there are none."""
    if not lines:
        return []
    return ["", f"Skipped runs (their {METRICS} cannot be used; their cells show as missing):", "",
            *[f"- {line}" for line in lines]]


def _reason_from_log(log: Path) -> tuple[Status, str]:
    try:
        lines = [line.rstrip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return Status.incomplete, f"started, no {METRICS} and no {LOG}"
    entries = [i for i, line in enumerate(lines) if LOG_LINE.match(line)]
    last = entries[-1] if entries else None
    if last is not None and LOG_LINE.match(lines[last])["level"] in ("ERROR", "CRITICAL"):
        # the log's last entry is the error (a run restarted after a failure logs on, and is not failed)
        message = LOG_LINE.match(lines[last])["message"]
        # an unexpected exception is logged with its traceback: its last line names the exception
        trailing = lines[last + 1:]
        return Status.failed, _short(f"failed: {message}" + (f": {trailing[-1].strip()}" if trailing else ""))
    if not lines:
        return Status.incomplete, "started, nothing logged yet"
    progress = LOG_LINE.match(lines[-1])
    return Status.incomplete, _short(f"incomplete (interrupted or running; rerun resumes): "
                                     f"{progress['message'] if progress else lines[-1]}")


def _short(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."
