"""Who a run directory belongs to: one process trains in it at a time, and what it holds (a checkpoint to resume,
a finished result) is handed only to a command that asks for the same run: the same settings on the same data.

A run's directory is named by its command-line overrides, so two commands can land in the same one: the same
overrides on another data root (paths stay out of the name), or paths that differ only where ``/`` became ``_``.
``identity.json`` records what the run is (its resolved config and a fingerprint of every data file it read) and
a later command that differs is refused in one line with nothing in the directory changed.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import hashlib
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from omegaconf import DictConfig, OmegaConf

from mesimp.engine.io import read_json, write_json, write_text
from mesimp.errors import UserError

log = logging.getLogger(__name__)

LOCK = ".lock"
IDENTITY = "identity.json"
# Settings that do not change what a run computes (they stay out of the directory name too, configs/train.yaml);
# a run started on the GPU resumes on the CPU and the other way round.
NOT_IDENTITY = ("resume", "threads", "device", "data.root", "data.fetch")
START_OVER = "resume=false retrains it here, MESIMP_RUNS=... trains elsewhere"


class Refused(UserError):
    """The directory belongs to another run or another process; nothing in it was touched."""


@contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock while the run uses it; a second process is refused, naming the first."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise Refused(f"{run_dir} is in use by another run (pid {holder}): wait for it to end, or train "
                          f"elsewhere with MESIMP_RUNS=...") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock, also when the process is killed


def remove_stale_temporaries(run_dir: Path) -> None:
    """Atomic writes go through ``.NAME.*.tmp`` files (mesimp/engine/io.py); under the lock, any left over is
    from a killed process."""
    stale = sorted(run_dir.glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temporary file(s) left by an interrupted run: %s", len(stale),
                 ", ".join(path.name for path in stale))


def fingerprint(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return {"file": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _parent(config: dict, dotted: str) -> tuple[dict, str]:
    """The dict that holds ``dotted``'s last key (an empty one where a parent is missing), and that key."""
    *parents, key = dotted.split(".")
    node = config
    for parent in parents:
        node = node.get(parent)
        if not isinstance(node, dict):
            return {}, key
    return node, key


def identity(cfg: DictConfig, data_files: Sequence[Path]) -> dict:
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    for dotted in NOT_IDENTITY:
        node, key = _parent(config, dotted)
        node.pop(key, None)
    # Settings of a method the run does not use: full backprop is the same run whatever meprop.* says, and a run
    # without meSimp whatever simplify.* says, so a task default of theirs changing later does not disown it.
    if config.get("k") is None and config.get("k_ratio") is None:
        config.pop("meprop", None)
    if not config.get("simplify", {}).get("enabled", False):
        config["simplify"] = {"enabled": False}
    return {"config": _with_effective_lr(config), "data": [fingerprint(Path(path)) for path in data_files]}


def _with_effective_lr(config: dict) -> dict:
    """``config`` with the learning rate the run used in optim.lr and without the task's table of default rates
    (default_lr): a run is the same whether its rate was given or came from the table, and a default changing
    later disowns the runs that used it, not those of the other optimizers."""
    defaults = config.pop("default_lr", None)
    optim = config.get("optim")
    if isinstance(optim, dict) and optim.get("lr") is None and isinstance(defaults, dict):
        optim["lr"] = defaults.get(optim.get("name"))
    return config


def recorded_identity(run_dir: Path) -> dict | None:
    path = run_dir / IDENTITY
    if not path.exists():
        return None
    try:
        recorded = read_json(path)
    except ValueError:
        recorded = None
    if not (isinstance(recorded, dict) and {"config", "data"} <= set(recorded)):
        raise Refused(f"{path} is unreadable, so what this directory holds cannot be checked: {START_OVER}")
    return recorded


# Settings added to the schema after runs had been recorded whose default is not what those runs did everywhere
# (a task file sets another): such a run is compared as having run this value.
BEFORE_ADDED = {"optim.lr_schedule": "constant", "meprop.gates": "joint", "meprop.input_grad": "topk"}


def check_identity(run_dir: Path, recorded: dict, current: dict) -> None:
    """Refuse a command that is not the run recorded here. Other keys only one side has are skipped: a setting
    added to the schema since the run started has its old behaviour as default."""
    changed = _first_difference(_as_recorded_now(recorded["config"]), current["config"])
    if changed:
        key, had, wanted = changed
        raise Refused(f"{run_dir} holds a run with {key}={had}, not {wanted}: {START_OVER}")
    changed = changed_file(recorded["data"], current["data"])
    if changed or len(recorded["data"]) != len(current["data"]):
        detail = (f"{changed[0]['file']} then, {changed[1]['file']} now differ" if changed
                  else f"{len(recorded['data'])} data file(s) then, {len(current['data'])} now")
        raise Refused(f"{run_dir} holds a run trained on other data ({detail}): {START_OVER}")


def _as_recorded_now(config: dict) -> dict:
    """A recorded config as :func:`identity` would write it today (what it did before a setting existed, its
    effective learning rate)."""
    config = copy.deepcopy(config)
    for dotted, value in BEFORE_ADDED.items():
        node, key = _parent(config, dotted)
        node.setdefault(key, value)
    return _with_effective_lr(config)


def changed_file(recorded: Iterable[dict], current: Iterable[dict]) -> tuple[dict, dict] | None:
    """The first pair of data entries (identity.json's, :func:`fingerprint`'s), position by position, whose bytes
    differ (size or sha256); None when every pair matches."""
    return next(((old, new) for old, new in zip(recorded, current)
                 if (old["bytes"], old["sha256"]) != (new["bytes"], new["sha256"])), None)


def _first_difference(had: dict, wanted: dict, prefix: str = "") -> tuple[str, object, object] | None:
    for key in sorted(had.keys() & wanted.keys()):
        old, new = had[key], wanted[key]
        if isinstance(old, dict) and isinstance(new, dict):
            found = _first_difference(old, new, f"{prefix}{key}.")
            if found:
                return found
        elif old != new:
            return f"{prefix}{key}", old, new
    return None


def record(run_dir: Path, cfg: DictConfig, overrides: Sequence[str], current: dict) -> None:
    """The run's identity, and its config where Hydra keeps one (``.hydra/``; Hydra's own writing is off, so a
    refused command cannot overwrite the config of the run it was refused)."""
    write_json(run_dir / IDENTITY, current)
    write_text(run_dir / ".hydra" / "config.yaml", OmegaConf.to_yaml(cfg))
    write_text(run_dir / ".hydra" / "overrides.yaml", OmegaConf.to_yaml(list(overrides)))
