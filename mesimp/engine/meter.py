"""Measures what the linear layers' backward did: time spent and the fraction of rows updated."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from mesimp.nn import BackwardReport, ReportsBackward


@dataclass
class BackwardTotals:
    seconds: float = 0.0  # backward arithmetic of every linear layer
    kept: dict[str, int] = field(default_factory=dict)  # per meProp layer: kept entries over all rows
    possible: dict[str, int] = field(default_factory=dict)  # per meProp layer: width x rows

    def update_ratio(self) -> float | None:
        """Mean over meProp layers of the fraction of weight rows that got a gradient, per example."""
        ratios = [self.kept[name] / self.possible[name] for name in self.kept if self.possible[name]]
        return sum(ratios) / len(ratios) if ratios else None


class BackwardMeter:
    """Hooks every meProp module of a model; ``tracked`` names the layers whose update ratio counts.

    The model must use meProp modules (MePropLinear, MePropLSTM) for every linear map that should be timed
    (dense ones with k=None), so the dense baseline is measured by the same code path as meProp.
    """

    def __init__(self, model: nn.Module, tracked: set[str], totals: BackwardTotals | None = None) -> None:
        self.totals = totals or BackwardTotals()
        self._handles = []
        for name, module in model.named_modules():
            if isinstance(module, ReportsBackward):
                self._handles.append(module.register_report_hook(self._hook(name, name in tracked)))
                if name in tracked:
                    self.totals.kept.setdefault(name, 0)
                    self.totals.possible.setdefault(name, 0)

    def _hook(self, name: str, tracked: bool):
        def record(report: BackwardReport) -> None:
            self.totals.seconds += report.seconds
            if tracked:
                self.totals.kept[name] += report.kept_per_row * report.rows
                self.totals.possible[name] += report.width * report.rows

        return record

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
