"""The entrypoint: ``python -m mesimp.train task=mnist k=20`` (add ``-m`` and comma lists to sweep).

Hydra lives here and in ``configs/``; everything below takes plain values. Bad input ends the run with
one ``error: ...`` line on stderr and exit status 2; in a sweep it fails that job only (its train.log says why)
and Hydra reports the failed jobs once the others have run.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from mesimp.config import TrainConfig, register_schema
from mesimp.errors import UserError
from mesimp.runner import run

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
MAX_RUN_NAME = 200  # file systems allow 255 bytes per path component

register_schema()


def run_name(overrides: str) -> str:
    """A run's directory is named by its overrides, so rerunning the same command finds (and resumes) it.

    Path separators and glob stars in overrides such as data.train=/x/*.conllu must not make subdirectories, and
    a name too long for the file system keeps a readable start plus a digest of the whole.
    """
    name = (overrides or "default").replace("/", "_").replace("*", "+")
    if len(name) > MAX_RUN_NAME:
        name = f"{name[:MAX_RUN_NAME - 17]}...{hashlib.sha1(name.encode()).hexdigest()[:14]}"
    return name


OmegaConf.register_new_resolver("run_name", run_name, replace=True)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_choice_overrides(args: list[str]) -> None:
    """Hydra's own message for an unknown config group option is a page long; say it in one line."""
    for group in ("task", "experiment"):
        known = sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))
        for arg in args:
            if arg.lstrip("+").startswith(f"{group}="):
                unknown = [name for name in arg.split("=", 1)[1].split(",") if name not in known]
                if unknown:
                    fail(f"unknown {group} {unknown[0]!r}; known: {', '.join(known)}")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def hydra_main(cfg: TrainConfig) -> None:
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except UserError as err:
        _to_log_file(f"error: {err}")  # the run's train.log keeps the reason (the paper-table report shows it)
        if multirun:
            raise  # Hydra records the job as failed and a sweep's other jobs go on; sys.exit would end them all
        fail(str(err))
    except Exception:
        log.exception("run failed")
        raise


def _to_log_file(message: str) -> None:
    """Write to the run's log file only: on the console the error stays one line."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def main() -> None:
    check_choice_overrides(sys.argv[1:])
    hydra_main()


if __name__ == "__main__":
    main()
