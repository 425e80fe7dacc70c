"""One training run of any task: build it, train it, write ``metrics.json`` and TensorBoard hparams.

Plain Python: ``mesimp.train`` hands it the composed config and the run directory.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from mesimp.config import KPolicy, PruneThreshold, TrainConfig, effective_rule, validate
from mesimp.engine import rundir
from mesimp.engine.io import write_json
from mesimp.engine.denormals import flush_denormals
from mesimp.engine.memory import keep_freed_memory
from mesimp.engine.decode import time_decoding
from mesimp.engine.device import describe_device, resolve_device
from mesimp.engine.optim import build_optimizer, lr_schedule
from mesimp.engine.trainer import CHECKPOINT, LoopSettings, Trainer
from mesimp.errors import UserError
from mesimp.metrics_file import METRICS, InvalidMetrics, read_metrics
from mesimp.simplify import Simplifier, SimplifySchedule

log = logging.getLogger(__name__)

FEW_UPDATES = 100  # per epoch: fewer, and a run's epochs teach little (a small data set at the paper's batch size)
TASKS = {"mnist": "mesimp.tasks.mnist", "parse": "mesimp.tasks.parse", "pos": "mesimp.tasks.pos"}
# A checkpoint holds the weights and up to two optimizer moments each; while a new one is written the old stays.
CHECKPOINT_COPIES = 2 * 3


def method_name(cfg: TrainConfig) -> str:
    if not uses_meprop(cfg):
        return "full"
    name = "mesimp" if cfg.simplify.enabled else "meprop"
    name = f"{name}-unified" if cfg.meprop.scope.value == "batch" else name
    return f"{name}-random" if cfg.meprop.select.value == "random" else name


def uses_meprop(cfg: TrainConfig) -> bool:
    return cfg.k is not None or cfg.k_ratio is not None


def check_same_method(cfg: TrainConfig, previous: dict, path: Path, overrides: Sequence[str] = ()) -> None:
    """A finished run from before identity.json, found under this command's directory, must have run what is asked
    for now where a task's default changed since (the parser's rule to unbiased_centred, MNIST's learning rate to
    cosine, the tagger's gates to per_gate, its AdaGrad rate). Its metrics.json records some of these (the rate
    always); what it lacks, it ran as the paper does (topk, a constant rate, top-k over all gates), unless the
    command names the setting: then it is in the directory's name, so the run there was started with it."""
    meprop = previous.get("k") is not None or previous.get("k_ratio") is not None
    before = rundir.BEFORE_ADDED  # what a run recorded before a setting existed ran
    named = {override.split("=", 1)[0].lstrip("+~") for override in overrides}
    # (setting, what metrics.json records or None, what a run that records nothing ran, what is asked for now)
    checks = [("meprop.rule", previous.get("rule"), "topk" if meprop else None,
               effective_rule(cfg).value if uses_meprop(cfg) else None),
              ("optim.lr_schedule", previous.get("lr_schedule"), before["optim.lr_schedule"],
               cfg.optim.lr_schedule.value)]
    if cfg.task == "pos" and meprop and uses_meprop(cfg):
        checks.append(("meprop.gates", None, before["meprop.gates"], cfg.meprop.gates.value))
        checks.append(("meprop.input_grad", None, before["meprop.input_grad"], cfg.meprop.input_grad.value))
    if "lr" in previous:  # the rate it used: a task's default rate may have changed since
        checks.append(("optim.lr", previous["lr"], None, learning_rate(cfg)))
    for key, recorded, assumed, wanted in checks:
        if recorded is None and key in named:
            continue
        had = assumed if recorded is None else recorded
        if had != wanted:
            raise UserError(f"{path} is a finished run with {key}={had}, not {wanted} (a task's default may have "
                            f"changed since): resume=false retrains it here, MESIMP_RUNS=... trains elsewhere")


def finished_metrics(path: Path) -> dict | None:
    """The finished run's metrics, or None (logged, the file moved aside) when the file cannot be used: the run
    then trains, or finishes from its checkpoint, and writes a good one."""
    try:
        return read_metrics(path)
    except InvalidMetrics as err:
        aside = path.with_name(path.name + ".invalid")
        os.replace(path, aside)
        log.warning("%s is not a finished run's metrics (%s): moved to %s, the run goes on", path, err, aside.name)
        return None


def check_free_space(run_dir: Path, model: nn.Module) -> None:
    """A full disk would otherwise show at the first checkpoint, an evaluation into the run."""
    needed = CHECKPOINT_COPIES * sum(p.numel() * p.element_size() for p in model.parameters()) + (1 << 20)
    free = shutil.disk_usage(run_dir).free
    if free < needed:
        raise UserError(f"{run_dir}: {free / 1e6:.1f} MB free, checkpoints need about {needed / 1e6:.1f} MB: free "
                        f"space or train elsewhere with MESIMP_RUNS=...")


def learning_rate(cfg: TrainConfig) -> float:
    if cfg.optim.lr is not None:
        return cfg.optim.lr
    return cfg.default_lr[cfg.optim.name.value]


def run(cfg: TrainConfig, run_dir: Path, overrides: Sequence[str] = ()) -> dict:
    """Train the run ``cfg`` in ``run_dir`` (``overrides``: the command line that named it), or hand back its
    result when the directory holds it finished. Anything the directory holds is kept until the new run is built."""
    validate(cfg)
    if cfg.task not in TASKS:
        raise UserError(f"unknown task {cfg.task!r}; known: {', '.join(sorted(TASKS))}")
    with rundir.exclusive(run_dir):
        rundir.remove_stale_temporaries(run_dir)
        return _run_owned(cfg, run_dir, overrides)


def _run_owned(cfg: TrainConfig, run_dir: Path, overrides: Sequence[str]) -> dict:
    version = code_version()  # now: the code may change on disk while a long run trains
    task = importlib.import_module(TASKS[cfg.task])
    recorded = rundir.recorded_identity(run_dir) if cfg.resume else None
    metrics_path = run_dir / METRICS
    current = None
    if cfg.resume and (recorded or metrics_path.exists()):  # what the directory holds must be this run's
        current = rundir.identity(cfg, task.data_files(cfg))
        if recorded:
            rundir.check_identity(run_dir, recorded, current)
        previous = finished_metrics(metrics_path) if metrics_path.exists() else None
        if previous is not None:
            if recorded is None:  # from before identities were recorded: what metrics.json says is all there is
                check_same_method(cfg, previous, metrics_path, overrides)
            log.info("run already complete: %s (resume=false starts it over)", metrics_path)
            return previous
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    flush_denormals(cfg.flush_denormals)  # always set: a launcher's worker process may run several configs
    keep_freed_memory()
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device.value)

    built = task.build(cfg)
    current = current or rundir.identity(cfg, task.data_files(cfg))
    if not cfg.resume:  # only now that the new run is built: a restart that fails to start keeps the old one
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
        metrics_path.unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
    rundir.record(run_dir, cfg, overrides, current)
    check_free_space(run_dir, built.task.model)
    model = built.task.model
    initial_params = sum(p.numel() for p in model.parameters())
    lr = learning_rate(cfg)

    def make_optimizer(params):
        return build_optimizer(cfg.optim.name.value, params, lr, betas=cfg.optim.betas, eps=cfg.optim.eps,
                               momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay)

    examples = built.task.train_size
    updates = math.ceil(examples / cfg.batch_size)
    simplifier = build_simplifier(cfg, built.unit_groups) if cfg.simplify.enabled else None
    settings = LoopSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, evals_per_epoch=cfg.evals_per_epoch,
                            seed=cfg.seed, clip_value=cfg.optim.clip_value, resume=cfg.resume,
                            diagnostics_every=cfg.diagnostics_every if cfg.diagnostics else None,
                            lr_at=lr_schedule(cfg.optim.lr_schedule.value, lr, cfg.epochs * updates))
    trainer = Trainer(built.task, make_optimizer, settings, run_dir, tracked_layers=built.tracked_layers,
                      generators=built.generators, simplifier=simplifier, device=device)
    if uses_meprop(cfg) and effective_rule(cfg) != cfg.meprop.rule:
        log.info("meprop.rule=%s applies to per-example top-k only: this %s run uses the paper's topk",
                 cfg.meprop.rule.value, method_name(cfg))
    log.info("%s %s: k=%s k_ratio=%s, %d training examples, %d updates per epoch, hidden %s, %d parameters, %s lr %g, "
             "on %s", cfg.task, method_name(cfg), cfg.k, cfg.k_ratio, examples, updates, built.hidden_dims,
             initial_params, cfg.optim.name.value, lr, describe_device(device))
    if updates < FEW_UPDATES:
        log.warning("only %d updates per epoch (batch_size=%d, %d training examples): on a small data set lower "
                    "batch_size (e.g. to %d)", updates, cfg.batch_size, examples, max(1, examples // 200))
    state = trainer.fit()
    final_params = sum(p.numel() for p in model.parameters())
    models = {"final": model, **({"original_width": built.original_model().to(device)} if simplifier else {})}

    metrics = {
        "task": cfg.task,
        "data_name": cfg.data.name or ("mnist" if cfg.task == "mnist" else None),  # null: own treebank files
        "method": method_name(cfg),
        "k": cfg.k,
        "k_ratio": cfg.k_ratio,
        "scope": cfg.meprop.scope.value,
        "select": cfg.meprop.select.value,
        "rule": effective_rule(cfg).value if uses_meprop(cfg) else None,
        "optimizer": cfg.optim.name.value,
        "lr": lr,
        "lr_schedule": cfg.optim.lr_schedule.value,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "epochs": cfg.epochs,
        "epochs_run": state.epoch,
        "steps": state.step,
        "train_examples": built.task.train_size,
        "best_dev": state.best_dev,
        "test_at_best_dev": state.test_at_best_dev,
        "best_dev_epoch": state.best_dev_epoch,
        "best_dev_step": state.best_dev_step,
        "backprop_time_s": state.backward.seconds,
        "backward_time_s": state.backward_time_s,
        "forward_time_s": state.forward_time_s,
        "train_time_s": state.train_time_s,
        "update_ratio": state.backward.update_ratio(),
        "final_dev": built.task.evaluate("dev"),
        "final_test": built.task.evaluate("test"),
        "hidden_dims": built.hidden_dims,
        "dims_history": simplifier.history if simplifier else [],
        "num_params": final_params,
        "original_num_params": initial_params,
        "compression": initial_params / final_params,
        "decode_time_s": time_decoding(built.task, models),
        "device": describe_device(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "code_version": version,
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "history": state.history,
        "diagnostics": state.diagnostics,
        "data": current["data"],
    }
    details = state.test_details_at_best_dev  # task-specific scores of the test evaluation at the best dev
    if "las" in details:
        metrics["test_las"] = details["las"]
    if "sents_per_s" in details:
        metrics["decode_sents_per_s"] = details["sents_per_s"]
    write_json(metrics_path, metrics)
    write_hparams(run_dir, cfg, metrics)
    log.info("best dev %.2f at epoch %s; test at best dev %.2f; linear backward %.1fs; update ratio %s; "
             "hidden %s (%.1fx fewer parameters)", state.best_dev, state.best_dev_epoch, state.test_at_best_dev,
             state.backward.seconds, metrics["update_ratio"], metrics["hidden_dims"], metrics["compression"])
    return metrics


def build_simplifier(cfg: TrainConfig, unit_groups) -> Simplifier:
    if unit_groups is None:
        raise UserError(f"task {cfg.task!r} does not support simplify=mesimp yet")
    schedule = SimplifySchedule(cycle_epochs=cfg.simplify.cycle_epochs, prunes_per_epoch=cfg.simplify.prunes_per_epoch,
                                optimizer_reset=cfg.simplify.optimizer_reset, warmup_epochs=cfg.simplify.warmup_epochs)
    return Simplifier(unit_groups(), cfg.simplify.prune_rate, schedule,
                      scale_k=cfg.simplify.k_policy == KPolicy.ratio,
                      relative_threshold=cfg.simplify.threshold == PruneThreshold.relative)


def code_version() -> str | None:
    """The git commit of the code that ran (with -dirty for uncommitted changes), when run from a checkout."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_hparams(run_dir: Path, cfg: TrainConfig, metrics: dict) -> None:
    hparams = {
        "task": cfg.task, "method": metrics["method"], "k": -1 if cfg.k is None else cfg.k,
        "k_ratio": cfg.k_ratio or 0.0, "scope": metrics["scope"], "select": metrics["select"],
        "rule": metrics["rule"] or "none",
        "optimizer": metrics["optimizer"], "lr": metrics["lr"], "batch_size": cfg.batch_size, "seed": cfg.seed,
        "hidden": str(list(cfg.model.hidden)), "dropout": cfg.model.dropout,
        "simplify": cfg.simplify.enabled, "prune_rate": cfg.simplify.prune_rate if cfg.simplify.enabled else 0.0,
    }
    final = {f"hparam/{key}": metrics[key] for key in ("best_dev", "test_at_best_dev", "backprop_time_s",
                                                       "update_ratio", "num_params", "compression")
             if metrics[key] is not None}
    with SummaryWriter(str(run_dir / "tb")) as writer:
        writer.add_hparams(hparams, final, run_name="hparams")
