"""The training loop every task shares: minibatches, dev evaluation several times per epoch, the test
score at the best dev score (the paper's protocol), meSimp's simplification steps, timing, TensorBoard, and
checkpoints to resume from. With meSimp the best dev is chosen among the evaluations since the last step that
shrank the network, so the test score belongs to the network the run ends with (evaluated once more at the end
when the last step came after the last evaluation).

Each epoch's minibatches are cut into "chunks" at the evaluation points (``evals_per_epoch`` evenly spaced)
and, with meSimp, its simplification points. At each boundary the loop evaluates dev (and test when dev
improved) if it is an evaluation point, then simplifies if it is a simplification point (the authors' order),
then writes a checkpoint: a killed run resumes at the last boundary and, on the CPU, finishes with the same
numbers as an unbroken run. Checkpoints load to the CPU and are moved to the run's device, so a run started on a GPU
resumes on the CPU and the other way round.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from mesimp.engine.diagnostics import GradientDiagnostics
from mesimp.engine.io import load_checkpoint, save_checkpoint
from mesimp.engine.meter import BackwardMeter, BackwardTotals
from mesimp.engine.optim import set_lr, zero_moments
from mesimp.errors import UserError
from mesimp.nn.sparse_grad import clock
from mesimp.simplify import Simplifier

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


class TrainTask(Protocol):
    """What the loop needs from a task: a model, batches of the training set, a loss, and a scorer.

    A task may also keep a ``last_details`` dict of extra scores from its latest ``evaluate`` (parsing: LAS and
    speed): the loop logs them and keeps the test evaluation's at the best dev.
    """

    model: nn.Module
    train_size: int

    def train_batch(self, indices: Tensor) -> Any: ...

    def loss(self, batch: Any) -> Tensor: ...

    def evaluate(self, split: str) -> float: ...  # percent


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    batch_size: int
    evals_per_epoch: int
    seed: int
    clip_value: float | None = None
    resume: bool = True
    diagnostics_every: int | None = None  # steps between gradient diagnostics; None: none
    lr_at: Callable[[int], float] | None = None  # the learning rate of each step (optim.lr_schedule); None: constant


@dataclass
class LoopState:
    epoch: int = 0  # epochs finished
    chunk: int = 0  # chunks of the current epoch finished
    step: int = 0  # optimizer steps taken
    best_dev: float | None = None
    test_at_best_dev: float | None = None
    best_dev_epoch: float | None = None  # fractional: 2.5 = half-way through the third epoch
    best_dev_step: int | None = None
    test_details_at_best_dev: dict = field(default_factory=dict)  # a task's extra scores (parsing: LAS, speed)
    train_time_s: float = 0.0  # forward + backward + optimizer step, evaluation excluded
    forward_time_s: float = 0.0
    backward_time_s: float = 0.0  # the whole loss.backward()
    backward: BackwardTotals = field(default_factory=BackwardTotals)  # the linear layers' share
    history: list[dict] = field(default_factory=list)  # one record per dev evaluation: step, epoch, loss, dev
    diagnostics: dict[str, dict[str, list]] = field(default_factory=dict)  # GradientDiagnostics.history

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LoopState":
        return cls(**{**data, "backward": BackwardTotals(**data["backward"])})


def chunk_bounds(num_batches: int, chunks: int) -> list[tuple[int, int]]:
    """Split ``num_batches`` minibatches into at most ``chunks`` contiguous, near-equal slices."""
    chunks = max(1, min(chunks, num_batches))
    edges = [round(i * num_batches / chunks) for i in range(chunks + 1)]
    return list(zip(edges[:-1], edges[1:]))


def epoch_order(seed: int, epoch: int, size: int) -> Tensor:
    """The shuffled example order of one epoch: a function of (seed, epoch) alone, so resume needs no state."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class Trainer:
    """Trains ``task.model``; ``make_optimizer`` builds (and, at meSimp's cycle starts, rebuilds) the optimizer."""

    def __init__(
        self,
        task: TrainTask,
        make_optimizer: OptimizerFactory,
        settings: LoopSettings,
        run_dir: Path,
        *,
        tracked_layers: set[str],
        generators: dict[str, torch.Generator] | None = None,
        simplifier: Simplifier | None = None,
        device: torch.device = torch.device("cpu"),  # the model's and the task's tensors'
    ) -> None:
        self.task = task
        self.make_optimizer = make_optimizer
        self.optimizer = make_optimizer(task.model.parameters())
        self.settings = settings
        self.run_dir = run_dir
        self.tracked_layers = tracked_layers
        self.generators = generators or {}
        self.simplifier = simplifier
        self.device = device
        self.state = LoopState()
        self._loss_sum, self._loss_batches = 0.0, 0  # since the last evaluation; for logging only

    # -- checkpoints -----------------------------------------------------------------------------
    def _checkpoint(self) -> dict:
        return {
            "model": self.task.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "loop": self.state.to_dict(),
            "torch_rng": torch.get_rng_state(),
            "generators": {name: gen.get_state() for name, gen in self.generators.items()},
            "simplify": self.simplifier.state_dict() if self.simplifier else None,
        }

    def _restore(self, data: dict) -> None:
        if self.simplifier:
            self.simplifier.load_state_dict(data["simplify"])  # the saved (shrunk) shapes first
            self.optimizer = self.make_optimizer(self.task.model.parameters())
        self.task.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])  # moves the moments to the parameters' device
        self.state = LoopState.from_dict(data["loop"])
        torch.set_rng_state(data["torch_rng"])
        for name, gen_state in data["generators"].items():
            try:
                self.generators[name].set_state(gen_state)
            except RuntimeError:  # the state of another device's generator (CPU and CUDA ones differ in kind)
                self.generators[name].manual_seed(self.settings.seed * 100_003 + self.state.step)
                log.info("the %s random draws restart from a new seed: %s was written on another device", name,
                         CHECKPOINT)

    def maybe_resume(self) -> bool:
        path = self.run_dir / CHECKPOINT
        if not (self.settings.resume and path.exists()):
            return False
        try:
            data = load_checkpoint(path)
        except Exception as err:  # truncated, overwritten, not a checkpoint: torch raises many kinds
            aside = path.with_name(path.name + ".unreadable")
            os.replace(path, aside)
            log.warning("%s is unreadable (%s): moved to %s, this run starts over", path,
                        str(err).splitlines()[0] if str(err) else type(err).__name__, aside.name)
            return False
        try:
            self._restore(data)
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            # the model may be half restored now: no training from here
            raise UserError(f"{path} does not fit this run's model ({str(err).splitlines()[0]}): resume=false "
                            "starts the run over") from None
        log.info("resumed from %s at epoch %d, chunk %d, step %d", path, self.state.epoch, self.state.chunk,
                 self.state.step)
        return True

    # -- the loop --------------------------------------------------------------------------------
    def fit(self) -> LoopState:
        resumed = self.maybe_resume()
        writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.state.step if resumed else None)
        meter = BackwardMeter(self.task.model, self.tracked_layers, self.state.backward)
        self.diagnostics = (GradientDiagnostics(self.task.model, self.tracked_layers, self.state.diagnostics)
                            if self.settings.diagnostics_every else None)
        try:
            while self.state.epoch < self.settings.epochs:
                self._run_epoch(writer)
            if self.state.best_dev is None:  # the last step shrank the model after the last evaluation
                self._evaluate(writer, fraction=0.0)
        finally:
            meter.close()
            if self.diagnostics:
                self.diagnostics.close()
            writer.close()
        return self.state

    def _run_epoch(self, writer: SummaryWriter) -> None:
        s, st = self.settings, self.state
        order = epoch_order(s.seed, st.epoch, self.task.train_size)
        batches = order.split(s.batch_size)
        evals = {end for _, end in chunk_bounds(len(batches), s.evals_per_epoch)}
        schedule = self.simplifier.schedule if self.simplifier else None
        prunes = set(schedule.prune_points(st.epoch, len(batches))) if schedule else set()
        ends = sorted(evals | prunes)
        starts = [0, *ends[:-1]]
        if st.chunk == 0 and schedule and schedule.fresh_optimizer_at_start(st.epoch):
            self.optimizer = self.make_optimizer(self.task.model.parameters())
        before = (st.forward_time_s, st.backward_time_s, st.backward.seconds)
        progress = tqdm(total=len(batches), initial=starts[st.chunk], desc=f"epoch {st.epoch + 1}/{s.epochs}",
                        disable=None, leave=False)
        for chunk in range(st.chunk, len(ends)):
            start, end = starts[chunk], ends[chunk]
            self._train_chunk(batches[start:end], progress, writer)
            st.chunk = chunk + 1
            if end in evals:
                self._evaluate(writer, fraction=end / len(batches))
            if end in prunes:
                self._simplify(writer)
            if schedule and schedule.zero_moments_after_chunk(st.epoch):
                zero_moments(self.optimizer)
            if st.chunk == len(ends):
                st.epoch, st.chunk = st.epoch + 1, 0
                self._log_epoch(writer, before)
            save_checkpoint(self.run_dir / CHECKPOINT, self._checkpoint())
        progress.close()

    def _train_chunk(self, batches: tuple[Tensor, ...], progress: tqdm, writer: SummaryWriter) -> None:
        model, opt, st = self.task.model, self.optimizer, self.state
        every = self.settings.diagnostics_every
        model.train()
        total = torch.zeros((), device=self.device)
        for indices in batches:
            batch = self.task.train_batch(indices)
            t0 = time.perf_counter()  # the previous step's clock() waited for the device
            loss = self.task.loss(batch)
            t1 = clock(loss)
            # Keep dense .grad buffers: meProp then adds its k gradient rows into them in place.
            opt.zero_grad(set_to_none=False)
            diagnose = bool(every) and st.step % every == 0
            if diagnose:
                self.diagnostics.arm(True)
            loss.backward()
            t2 = clock(loss)
            if diagnose:
                for layer, figures in self.diagnostics.collect(st.step).items():
                    for key, value in figures.items():
                        writer.add_scalar(f"diagnostics/{layer}/{key}", value, st.step)
            if self.settings.clip_value is not None:
                nn.utils.clip_grad_value_(model.parameters(), self.settings.clip_value)
            if self.settings.lr_at is not None:
                set_lr(opt, self.settings.lr_at(st.step))
            opt.step()
            t3 = clock(loss)
            st.forward_time_s += t1 - t0
            st.backward_time_s += t2 - t1
            st.train_time_s += t3 - t0
            st.step += 1
            total += loss.detach()
            progress.update(1)
        self._loss_sum += total.item()
        self._loss_batches += len(batches)

    def _evaluate(self, writer: SummaryWriter, fraction: float) -> None:
        st = self.state
        train_loss = self._loss_sum / max(1, self._loss_batches)
        self._loss_sum, self._loss_batches = 0.0, 0
        dev = self.task.evaluate("dev")
        writer.add_scalar("train/loss", train_loss, st.step)
        writer.add_scalar("dev/accuracy", dev, st.step)
        for key, value in getattr(self.task, "last_details", {}).items():
            if value is not None:
                writer.add_scalar(f"dev/{key}", value, st.step)
        st.history.append({"step": st.step, "epoch": round(st.epoch + fraction, 4), "train_loss": train_loss,
                           "dev": dev})
        improved = st.best_dev is None or dev > st.best_dev
        if improved:
            st.best_dev, st.best_dev_step = dev, st.step
            st.best_dev_epoch = round(st.epoch + fraction, 4)
            st.test_at_best_dev = self.task.evaluate("test")
            st.test_details_at_best_dev = dict(getattr(self.task, "last_details", {}))
            writer.add_scalar("test/accuracy_at_best_dev", st.test_at_best_dev, st.step)
        log.info("epoch %.3f step %d: train loss %.4f, dev %.2f%s", st.epoch + fraction, st.step, train_loss, dev,
                 f" (best; test {st.test_at_best_dev:.2f})" if improved else "")

    def _simplify(self, writer: SummaryWriter) -> None:
        before = self.simplifier.dims
        dims = self.simplifier.step(self.optimizer, self.state.step)
        self._log_size(writer)
        log.info("step %d: simplified to hidden dims %s", self.state.step, dims)
        if dims != before:
            # The scores so far belong to a larger network than the one the run ends with: the best dev (and the
            # test at it) is chosen among the evaluations of the network at its final size, the one that ships.
            st = self.state
            st.best_dev = st.test_at_best_dev = st.best_dev_epoch = st.best_dev_step = None
            st.test_details_at_best_dev = {}

    def _log_size(self, writer: SummaryWriter) -> None:
        model, step = self.task.model, self.state.step
        writer.add_scalar("model/num_params", sum(p.numel() for p in model.parameters()), step)
        for layer, width in enumerate(getattr(model, "hidden_dims", [])):
            writer.add_scalar(f"model/hidden_dim_{layer}", width, step)

    def _log_epoch(self, writer: SummaryWriter, before: tuple[float, float, float]) -> None:
        st = self.state
        forward, backward, linear = before
        writer.add_scalar("time/forward_s", st.forward_time_s - forward, st.epoch)
        writer.add_scalar("time/backward_s", st.backward_time_s - backward, st.epoch)
        writer.add_scalar("time/linear_backward_s", st.backward.seconds - linear, st.epoch)
        ratio = st.backward.update_ratio()
        if ratio is not None:
            writer.add_scalar("meprop/update_ratio", ratio, st.epoch)
        self._log_size(writer)
