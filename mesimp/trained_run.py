"""What export and predict read from a training run's directory: the weights (``checkpoint.pt``), the config the
run saved (``.hydra/config.yaml``), and a check that the training data its config names is still the data it was
trained on (``identity.json``): a treebank model's vocabularies are not in the checkpoint, they are rebuilt from
that data as training built them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mesimp.config import TrainConfig
from mesimp.data.paths import resolve_data_root
from mesimp.data.treebank import split_files
from mesimp.engine.rundir import IDENTITY, changed_file, fingerprint
from mesimp.engine.trainer import CHECKPOINT
from mesimp.errors import UserError
from mesimp.model_file import read_torch_file

log = logging.getLogger(__name__)

CONFIG = Path(".hydra") / "config.yaml"


def model_state(run_dir: Path) -> dict:
    """The state_dict of the model in the run's checkpoint: the final model once the run has finished."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    checkpoint = read_torch_file(path)
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{path} has no 'model' state_dict")
    return state


def metrics_task(run_dir: Path) -> str | None:
    """The task metrics.json names; None when the file is missing or odd (a run still training has none)."""
    try:
        task = json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    task = task.get("task") if isinstance(task, dict) else None
    return task if isinstance(task, str) else None


def run_task(run_dir: Path) -> str | None:
    """The run's task: its saved config's, else metrics.json's; None when neither says."""
    path = Path(run_dir) / CONFIG
    try:
        task = OmegaConf.load(path).get("task") if path.is_file() else None
    except (OSError, OmegaConfBaseException, AttributeError):
        task = None
    return task if isinstance(task, str) else metrics_task(run_dir)


def run_config(run_dir: Path) -> TrainConfig:
    """The run's config as training saw it, typed (enums as enums) by the schema."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise UserError(f"no {path}: the run's config names the training data its vocabularies are rebuilt from")
    try:
        return OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(path))
    except (OSError, OmegaConfBaseException) as err:
        raise UserError(f"{path}: not a config this mesimp reads: {str(err).strip().splitlines()[0]}") from None


def check_training_data(run_dir: Path, cfg: TrainConfig, kind: str) -> None:
    """Refuse when the training split's files, as the run's config names them now (``kind`` as in ``split_files``),
    are not what the run was trained on: identity.json lists the run's data files with their digests, training
    files first."""
    files = split_files(cfg.data.name, resolve_data_root(cfg.data.root), cfg.data.train, cfg.data.dev, cfg.data.test,
                        kind=kind)["train"]
    path = Path(run_dir) / IDENTITY
    try:
        recorded = [{"file": entry["file"], "bytes": entry["bytes"], "sha256": entry["sha256"]}
                    for entry in json.loads(path.read_text())["data"][: len(files)]]
    except FileNotFoundError:
        log.warning("%s: no %s (a run from before mesimp recorded its data): the training data cannot be checked",
                    run_dir, IDENTITY)
        return
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path} is unreadable ({type(err).__name__}: {err}): the training data cannot be "
                        "checked") from None
    if len(recorded) != len(files):
        raise UserError(f"{run_dir} was trained on {len(recorded)} training file(s), its config names {len(files)} "
                        "now")
    changed = changed_file(recorded, (fingerprint(path_now) for path_now in files))  # hashes up to the first change
    if changed:
        then, now = changed
        raise UserError(f"{now['file']} is not the training file {run_dir} was trained on ({then['file']}, sha256 "
                        f"{then['sha256'][:12]}...): its vocabularies cannot be rebuilt")
