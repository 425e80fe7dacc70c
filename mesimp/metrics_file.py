"""A run's ``metrics.json``: its name, the keys every finished run's file has, and a reader that rejects one
that cannot be used. The runner writes it atomically, but a copy, a full disk or a hand edit can still leave it
truncated or wrong; whoever reads it (the reports, the runner deciding a run is done) reads it here."""

from __future__ import annotations

import json
from pathlib import Path

METRICS = "metrics.json"
# what the reports need of every run; every metrics.json the runner has written has them
REQUIRED_KEYS = ("task", "method", "best_dev", "test_at_best_dev")
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}


class InvalidMetrics(ValueError):
    """A metrics.json that is not a JSON object with every key of REQUIRED_KEYS; the message says why, in a line."""


def read_metrics(path: Path) -> dict:
    """The run's metrics. Raises InvalidMetrics when the file's content cannot be used, OSError (as open does)
    when the file cannot be read."""
    try:
        metrics = json.loads(Path(path).read_text())
    except ValueError as err:  # invalid JSON, truncated or empty, or bytes that are not UTF-8
        raise InvalidMetrics(f"not valid JSON ({err})") from None
    if not isinstance(metrics, dict):
        raise InvalidMetrics(f"not a JSON object but {_JSON_TYPES[type(metrics)]}")
    missing = [key for key in REQUIRED_KEYS if key not in metrics]
    if missing:
        raise InvalidMetrics(f"no {', '.join(missing)}")
    return metrics
