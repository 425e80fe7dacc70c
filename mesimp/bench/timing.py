"""Side-by-side timing: the contenders alternate within each repetition, so they share the machine's state."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def side_by_side(contenders: dict[str, Callable[[], float | None]], repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds of each contender over ``repeats`` rounds after ``warmup`` untimed ones.

    A contender may time itself (return seconds, e.g. only its backward) or return None to be timed whole.
    """
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(warmup + repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            own = run()
            elapsed = own if own is not None else time.perf_counter() - start
            if round_ >= warmup:
                seconds[name].append(elapsed)
    return {name: statistics.median(values) for name, values in seconds.items()}
