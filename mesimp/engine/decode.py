"""Decoding (test-set evaluation) time of several models of one task, measured side by side."""

from __future__ import annotations

import statistics
import time

from torch import nn

from mesimp.engine.trainer import TrainTask


def time_decoding(task: TrainTask, models: dict[str, nn.Module], repeats: int = 3) -> dict[str, float]:
    """Median seconds of ``task.evaluate("test")`` with each model; repetitions alternate between the models."""
    trained = task.model
    seconds: dict[str, list[float]] = {name: [] for name in models}
    try:
        for _ in range(repeats):
            for name, model in models.items():
                task.model = model
                start = time.perf_counter()
                task.evaluate("test")
                seconds[name].append(time.perf_counter() - start)
    finally:
        task.model = trained
    return {name: statistics.median(values) for name, values in seconds.items()}
