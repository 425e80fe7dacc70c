"""The runs an experiment config stands for, and where Hydra puts each of them.

An experiment (``configs/experiment/NAME.yaml``) holds only a sweep, ``hydra.sweeper.params``; run with
``python -m mesimp.train -m +experiment=NAME``, Hydra's basic sweeper turns it into jobs. This module expands
the same sweep the same way (Hydra's own override parser and sweeper split), so the report knows every run a
table needs, finished or not, and finds each in ``<root>/<task>/<run name>`` exactly as the runner named it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.conf import JobConf
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf

from mesimp.errors import UserError
from mesimp.runner import TASKS
from mesimp.train import CONFIG_DIR, run_name

EXPERIMENT_DIR = CONFIG_DIR / "experiment"
_TRAIN_CONFIG = OmegaConf.load(CONFIG_DIR / "train.yaml")
# Hydra's defaults (separators) with the project's settings (exclude_keys) on top
_DIRNAME = OmegaConf.merge(OmegaConf.structured(JobConf.JobConfig.OverrideDirname),
                           _TRAIN_CONFIG.hydra.job.config.override_dirname)
DEFAULT_TASK = next(entry["task"] for entry in _TRAIN_CONFIG.defaults if OmegaConf.is_dict(entry) and "task" in entry)


@dataclass(frozen=True)
class Job:
    """One run: the overrides Hydra hands it (``+experiment`` aside, which names no run) and its directory."""

    overrides: tuple[str, ...]
    task: str
    name: str  # the run directory's name under <root>/<task>/

    def path(self, root: Path) -> Path:
        return root / self.task / self.name

    @property
    def values(self) -> dict[str, str]:
        return dict(override.split("=", 1) for override in self.overrides)


@dataclass(frozen=True)
class Extras:
    """Overrides added to every experiment's sweep, later ones winning: ``KEY=VALUE`` for every task, or
    ``TASK:KEY=VALUE`` for one (your own treebank files differ between parsing and tagging)."""

    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for override in self.overrides:
            if "=" not in override.split(":", 1)[-1]:
                raise UserError(f"override {override!r} is not KEY=VALUE or TASK:KEY=VALUE")
            task = _task_prefix(override)
            if task is None and ":" in override.split("=", 1)[0]:
                raise UserError(f"unknown task in {override!r}; known: {', '.join(sorted(TASKS))}")

    def for_task(self, task: str) -> list[str]:
        picked = []
        for override in self.overrides:
            prefix = _task_prefix(override)
            if prefix is None:
                picked.append(override)
            elif prefix == task:
                picked.append(override.split(":", 1)[1])
        return picked


def _task_prefix(override: str) -> str | None:
    head = override.split("=", 1)[0]
    task = head.split(":", 1)[0] if ":" in head else None
    return task if task in TASKS else None


def experiment_names() -> list[str]:
    return sorted(path.stem for path in EXPERIMENT_DIR.glob("*.yaml"))


def check_experiment(name: str) -> None:
    if not (EXPERIMENT_DIR / f"{name}.yaml").is_file():
        raise UserError(f"unknown experiment {name!r}; known: {', '.join(experiment_names())}")


def sweep_params(name: str) -> list[str]:
    """The experiment's sweep as overrides, in the order (and form) Hydra's basic sweeper builds them."""
    check_experiment(name)
    params = OmegaConf.select(OmegaConf.load(EXPERIMENT_DIR / f"{name}.yaml"), "hydra.sweeper.params") or {}
    return [f"{key}={value}" for key, value in params.items()]


def experiment_task(name: str) -> str:
    return next((o.split("=", 1)[1] for o in sweep_params(name) if o.startswith("task=")), DEFAULT_TASK)


def make_job(overrides: list[str]) -> Job:
    """The job Hydra runs for these (non-sweep) overrides, named as Hydra names its directory."""
    parsed = _parse(overrides)
    values = {o.key_or_group: o.get_value_element_as_str() for o in parsed}
    dirname = get_overrides_dirname(parsed, exclude_keys=list(_DIRNAME.exclude_keys), item_sep=_DIRNAME.item_sep,
                                    kv_sep=_DIRNAME.kv_sep)
    return Job(tuple(overrides), values.get("task", DEFAULT_TASK), run_name(dirname))


@lru_cache(maxsize=None)  # a report expands each experiment for many rows; the files do not change meanwhile
def expand(name: str, extras: Extras = Extras()) -> tuple[Job, ...]:
    """The jobs of ``python -m mesimp.train -m +experiment=NAME EXTRAS...``: command-line overrides win over the
    experiment's sweep for the same key, as in Hydra."""
    # hydra.* overrides (launcher settings) configure Hydra, not the run: Hydra keeps them out of the jobs too
    extra = [o for o in extras.for_task(experiment_task(name)) if not is_hydra(o)]
    batches = BasicSweeper.split_arguments(_parse([*sweep_params(name), *extra]), max_batch_size=None)
    return tuple(make_job(overrides) for overrides in batches[0])


def is_hydra(override: str) -> bool:
    return override.lstrip("+~").startswith(("hydra.", "hydra/"))


def describes_method(key: str) -> bool:
    """An override of how meProp and meSimp run (k, meprop.*, simplify*): what full backprop drops, and what tells
    a method apart from full backprop in the same setting."""
    return key in ("k", "k_ratio", "simplify") or key.startswith(("meprop.", "simplify."))


def full_backprop_job(job: Job, *extra: str) -> Job:
    """The job's settings and seed with full backprop (no :func:`describes_method` override), then ``extra``
    overrides (which replace the job's own for the same keys)."""
    def key(override: str) -> str:
        return override.split("=", 1)[0]

    gone = set(map(key, extra))
    kept = [o for o in job.overrides if key(o) not in gone and not describes_method(key(o))]
    return make_job([*kept, "k=null", *extra])


def same_size_job(job: Job, hidden_dims: list[int]) -> Job:
    """A meSimp run's twin: full backprop on a network of its final widths (:func:`full_backprop_job`)."""
    return full_backprop_job(job, f"model.hidden=[{','.join(str(d) for d in hidden_dims)}]")


def _parse(overrides: list[str]):
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as err:
        raise UserError(f"bad override in {' '.join(overrides)}: {str(err).splitlines()[0]}") from None
