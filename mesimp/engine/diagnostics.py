"""Gradient diagnostics of the meProp layers every N steps: how close each layer's weight gradient is to the
exact one (cosine), how much of its input is the minibatch mean, and how many of its units are dead.

Costs a dense dL/dW per layer on the diagnosed steps only (the layers compute it when their ``diagnose`` flag
is set); the figures go to TensorBoard (``diagnostics/<layer>/<name>``) and, as one column per figure, into the
loop state that ends up under ``diagnostics`` in metrics.json.
"""

from __future__ import annotations

from torch import nn

from mesimp.nn import BackwardReport, ReportsBackward

FIGURES = ("cosine", "input_mean_share", "dead_fraction")


class GradientDiagnostics:
    """Hooks the tracked meProp layers of ``model``; ``history`` (layer -> {"step": [...], figure: [...]}) grows
    by one entry per layer on each step that :meth:`diagnose` armed."""

    def __init__(self, model: nn.Module, tracked: set[str], history: dict[str, dict[str, list]]) -> None:
        self.history = history
        self.layers = {name: module for name, module in model.named_modules()
                       if name in tracked and isinstance(module, ReportsBackward)}
        self.latest: dict[str, dict[str, float]] = {}
        self._handles = [module.register_report_hook(self._hook(name)) for name, module in self.layers.items()]

    def _hook(self, name: str):
        def record(report: BackwardReport) -> None:
            if report.diagnostics is not None:
                self.latest[name] = report.diagnostics

        return record

    def arm(self, enabled: bool) -> None:
        """Whether the next backward computes the diagnostics."""
        for module in self.layers.values():
            module.diagnose = enabled

    def collect(self, step: int) -> dict[str, dict[str, float]]:
        """Files the figures of the armed backward under ``step`` and returns them."""
        latest, self.latest = self.latest, {}
        for name, figures in latest.items():
            record = self.history.setdefault(name, {"step": [], **{key: [] for key in FIGURES}})
            record["step"].append(step)
            for key in FIGURES:
                record[key].append(figures[key])
        self.arm(False)
        return latest

    def close(self) -> None:
        self.arm(False)
        for handle in self._handles:
            handle.remove()
