"""How often each unit was in meProp's kept set, per example, since the last simplification step."""

from __future__ import annotations

import torch
from torch import Tensor

from mesimp.nn import BackwardReport


class ActivenessRecord:
    def __init__(self, width: int) -> None:
        self.hits = torch.zeros(width, dtype=torch.int64)
        self.examples = 0

    def add(self, counts: Tensor, examples: int) -> None:
        self.hits += counts
        self.examples += examples

    def add_report(self, report: BackwardReport, fold) -> None:
        """Count one backward; ``fold`` maps the layer's per-output counts to per-unit counts."""
        self.add(fold(report.counts()), report.rows)

    def keep(self, prune_rate: float, relative: bool = False) -> Tensor:
        """Indices of the units in the kept set for at least ``prune_rate`` of the examples.

        As the authors' code: the threshold is ``floor(prune_rate * examples)`` and a unit survives when its
        count reaches it. ``relative``: the threshold is ``prune_rate`` times the average unit's count instead
        (with k=20 of 500 an average unit is kept for 4% of the examples, so the absolute 10% removes units kept
        2.5 times as often as the average).
        """
        scale = self.hits.sum().item() / len(self.hits) if relative else self.examples
        threshold = int(prune_rate * scale)
        return torch.nonzero(self.hits >= threshold).flatten()

    def reset(self, width: int | None = None) -> None:
        self.hits = torch.zeros(width if width is not None else len(self.hits), dtype=torch.int64)
        self.examples = 0

    def state_dict(self) -> dict:
        return {"hits": self.hits.clone(), "examples": self.examples}

    def load_state_dict(self, state: dict) -> None:
        self.hits = state["hits"].clone()
        self.examples = state["examples"]
