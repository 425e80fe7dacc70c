"""The entrypoint: ``python -m mesimp.train task=mnist k=20`` (add ``-m`` and comma lists to sweep).

Hydra lives here and in ``configs/``; everything below takes plain values. Bad input ends the run with
one ``error: ...`` line on stderr and exit status 2; in a sweep it fails that job only (its train.log says why)
and Hydra reports the failed jobs once the others have run.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, OverrideParseException
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mesimp.config import TrainConfig, register_schema
from mesimp.engine.rundir import Refused
from mesimp.errors import UserError
from mesimp.runner import run

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
OVERRIDE_GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"
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


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def one_line(err: BaseException) -> str:
    """Hydra and OmegaConf say what went wrong over several lines (the override, then why): keep the first of
    each, which name the key and the value."""
    parts = [str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else type(err).__name__]
    if err.__cause__ is not None and str(err.__cause__).strip():
        parts.append(str(err.__cause__).strip().splitlines()[0])
    if isinstance(err, OverrideParseException):
        parts.insert(0, f"bad override syntax ({OVERRIDE_GRAMMAR})")
    return ": ".join(parts)


def write_error(err: OSError) -> str:
    return f"{err.filename or 'output'}: {err.strerror or err}" + (
        " (free space, or train elsewhere with MESIMP_RUNS=...)" if err.errno in (errno.ENOSPC, errno.EDQUOT,
                                                                              errno.EFBIG) else "")


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
    hydra_cfg = HydraConfig.get()
    try:
        run(cfg, Path(hydra_cfg.runtime.output_dir), overrides=list(hydra_cfg.overrides.task))
    except (UserError, OSError) as err:
        message = write_error(err) if isinstance(err, OSError) else str(err)
        if not isinstance(err, Refused):  # a refused command leaves the log of the run it was refused alone
            _to_log_file(f"error: {message}")  # the run's train.log keeps the reason (the reports show it)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise  # Hydra records the job as failed and a sweep's other jobs go on; main reports it at the end
        fail(message)
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
    show_everything = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises what fails instead of printing it: reported here
    logging.raiseExceptions = False  # a log line that cannot be written (full disk) is not worth a traceback
    threading.excepthook = _quiet_writer_errors
    try:
        hydra_main()
    except (UserError, HydraException, OmegaConfBaseException) as err:
        if show_everything:
            raise
        fail(one_line(err))
    except OSError as err:  # an unwritable output directory, a full disk: atomic writes left no partial file
        if show_everything:
            raise
        fail(write_error(err))
    except KeyboardInterrupt:
        print("error: interrupted; the same command resumes from the last checkpoint", file=sys.stderr)
        sys.exit(130)


def _quiet_writer_errors(args: threading.ExceptHookArgs) -> None:
    """TensorBoard writes from a thread: its OSError reaches the training loop on the next write, reported once
    there; anything else is printed as usual."""
    if not issubclass(args.exc_type, OSError):
        threading.__excepthook__(args)


if __name__ == "__main__":
    main()
