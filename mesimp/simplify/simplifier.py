"""The meSimp procedure: record activeness from meProp's reports, and at each step remove the seldom-active units."""

from __future__ import annotations

from functools import partial

import torch

from mesimp.nn import BackwardReport
from mesimp.simplify.activeness import ActivenessRecord
from mesimp.simplify.schedule import SimplifySchedule
from mesimp.simplify.units import UnitGroup, compact_group


class Simplifier:
    """Owns the activeness records of ``groups`` and shrinks them at simplification steps.

    Activeness is recorded in every training backward, in normal cycles too, and reset only by a step, as
    in the authors' code. ``scale_k``: when a layer shrinks, keep its k at the same fraction of its width
    (the authors keep k fixed, so a layer narrower than k ends with a dense backward). A step never removes a
    layer's last unit: with none active, the most active one stays. ``relative_threshold``: a unit must be kept
    ``prune_rate`` times as often as the layer's average unit, not for ``prune_rate`` of the examples.
    """

    def __init__(self, groups: list[UnitGroup], prune_rate: float, schedule: SimplifySchedule,
                 scale_k: bool = False, relative_threshold: bool = False) -> None:
        if not 0.0 <= prune_rate < 1.0:
            raise ValueError(f"prune_rate must be in [0, 1), got {prune_rate}")
        self.groups = groups
        self.prune_rate = prune_rate
        self.relative_threshold = relative_threshold
        self.schedule = schedule
        self.records = {group.name: ActivenessRecord(group.width) for group in groups}
        self.history: list[dict] = []
        self._k_fraction = {
            group.name: group.source.k / group.source.out_features
            for group in groups if scale_k and getattr(group.source, "k", None)
        }
        self._handles = [group.source.register_report_hook(partial(self._record, group)) for group in groups]

    def _record(self, group: UnitGroup, report: BackwardReport) -> None:
        self.records[group.name].add_report(report, group.unit_counts)

    @property
    def dims(self) -> list[int]:
        return [group.width for group in self.groups]

    def step(self, optimizer: torch.optim.Optimizer | None, train_step: int) -> list[int]:
        """One simplification step; returns the widths after it."""
        for group in self.groups:
            record = self.records[group.name]
            keep = record.keep(self.prune_rate, self.relative_threshold)
            if len(keep) == 0:
                keep = record.hits.argmax().reshape(1)
            if len(keep) < group.width:
                compact_group(group, keep, optimizer)
                self._rescale_k(group)
            record.reset(group.width)
        self.history.append({"step": train_step, "dims": self.dims})
        return self.dims

    def _rescale_k(self, group: UnitGroup) -> None:
        if group.name in self._k_fraction:
            group.source.k = max(1, round(self._k_fraction[group.name] * group.source.out_features))

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    # -- resume ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "dims": self.dims,
            "k": [getattr(group.source, "k", None) for group in self.groups],
            "records": {name: record.state_dict() for name, record in self.records.items()},
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict) -> None:
        """Shrink the groups to the saved widths (the values come with the model's state_dict), restore counts."""
        for group, width, k in zip(self.groups, state["dims"], state["k"]):
            if group.width != width:
                compact_group(group, torch.arange(width))
            if k is not None:
                group.source.k = k
        for name, record in state["records"].items():
            self.records[name].load_state_dict(record)
        self.history = list(state["history"])
