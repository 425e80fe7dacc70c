"""When meSimp simplifies: cycles of ``cycle_epochs`` epochs, alternately simplifying and normal.

After ``warmup_epochs`` of normal training (0 in the authors' code), cycle 0 simplifies, cycle 1 trains normally
(meProp still on), cycle 2 simplifies, and so on; the paper's "stage" is one simplifying plus one normal cycle.
In a simplifying epoch there are ``prunes_per_epoch`` simplification steps at evenly spaced minibatch boundaries,
the last at the epoch's end. The warm-up exists for tasks with few updates an epoch (the parser: 17 at minibatch
10,000), whose first steps would otherwise judge units by the top-k of a network that has not learnt yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class OptimizerReset(Enum):
    cycle = "cycle"  # a fresh optimizer (step counter included) at the start of every cycle but the first
    authors = "authors"  # the authors' code: moments zeroed after every chunk of a cycle's last epoch, step kept
    none = "none"


@dataclass(frozen=True)
class SimplifySchedule:
    cycle_epochs: int = 5
    prunes_per_epoch: int = 8
    optimizer_reset: OptimizerReset = OptimizerReset.cycle
    warmup_epochs: int = 0

    def _cycle_epoch(self, epoch: int) -> int | None:
        """Epochs since the cycles began; None during the warm-up."""
        return epoch - self.warmup_epochs if epoch >= self.warmup_epochs else None

    def simplifying(self, epoch: int) -> bool:
        since = self._cycle_epoch(epoch)
        return since is not None and (since // self.cycle_epochs) % 2 == 0

    def prune_points(self, epoch: int, num_batches: int) -> list[int]:
        """Batch counts (1..num_batches) after which this epoch simplifies."""
        if not self.simplifying(epoch):
            return []
        steps = max(1, min(self.prunes_per_epoch, num_batches))
        return sorted({round((i + 1) * num_batches / steps) for i in range(steps)})

    def fresh_optimizer_at_start(self, epoch: int) -> bool:
        """A cycle (the warm-up counts as one) begins at this epoch, and it is not the first."""
        since = self._cycle_epoch(epoch)
        return (self.optimizer_reset == OptimizerReset.cycle and epoch > 0 and since is not None
                and since % self.cycle_epochs == 0)

    def zero_moments_after_chunk(self, epoch: int) -> bool:
        """The authors' reset: this epoch ends a cycle (or the warm-up)."""
        since = self._cycle_epoch(epoch + 1)
        return (self.optimizer_reset == OptimizerReset.authors and since is not None
                and since % self.cycle_epochs == 0)
