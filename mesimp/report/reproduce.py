"""``make reproduce-tables``: run every missing run of the paper's tables and figures, then write the report.

    python -m mesimp.report.reproduce [--fast] [--launcher local|slurm|slurm_local|basic] [--jobs 2]
                                      [--only NAME,...] [--dry-run] [[TASK:]KEY=VALUE ...]

Each experiment (configs/experiment/) is one Hydra multirun, ``python -m mesimp.train -m +experiment=NAME``,
started only when some of its runs have no metrics.json; Hydra's jobs skip finished runs and resume interrupted
ones, so the command can be stopped and rerun at will. Then the same-size networks of the meSimp runs (their
widths are known only now), the benchmark (Tables 7-8), and the report. A failed run does not stop the others:
it shows as a missing cell with its reason, and the command exits 1 once the report is written.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from mesimp.data.paths import resolve_data_root
from mesimp.data.treebank import SPLITS, dataset_files, treebank_files
from mesimp.errors import UserError
from mesimp.report.bench import BENCH_DIR
from mesimp.report.build import announce, build, every_runs, experiments
from mesimp.report.plan import BENCH_ARGS, DEFAULT_OUT, DEFAULT_ROOT, FAST_BENCH_ARGS, FAST_OUT, FAST_ROOT, \
    extras_from
from mesimp.report.runs import load_run
from mesimp.report.sweep import CONFIG_DIR, check_experiment, expand, experiment_task, is_hydra, same_size_job
from mesimp.train import fail

BENCH = "bench"  # --only's name for the benchmark of Tables 7-8
TREEBANK_TASKS = ("parse", "pos")
LAUNCHER_PLUGINS = {"local": "hydra_plugins.hydra_joblib_launcher", "slurm": "hydra_plugins.hydra_submitit_launcher",
                    "slurm_local": "hydra_plugins.hydra_submitit_launcher"}
EXTRAS = {"local": "sweep", "slurm": "slurm", "slurm_local": "slurm"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mesimp.report.reproduce",
                                     description="Run the paper's missing runs, then write its tables and figures.")
    parser.add_argument("overrides", nargs="*",
                        help="KEY=VALUE or TASK:KEY=VALUE added to every sweep (hydra.* ones configure the launcher)")
    parser.add_argument("--fast", action="store_true", help="a reduced grid that checks the pipeline in minutes")
    parser.add_argument("--root", type=Path, help=f"sweep root (default {DEFAULT_ROOT}; --fast: {FAST_ROOT})")
    parser.add_argument("--out", type=Path, help=f"report folder (default {DEFAULT_OUT}; --fast: {FAST_OUT})")
    parser.add_argument("--launcher", default="local", help="hydra/launcher: local (joblib, default), slurm, "
                                                            "slurm_local, or basic (one run at a time)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time with the local launcher (default 2)")
    parser.add_argument("--only", help=f"comma-separated experiments (and/or {BENCH!r}) instead of all")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and what they would run")
    return parser.parse_args(argv)


class Reproduction:
    def __init__(self, args: argparse.Namespace) -> None:
        self.fast = args.fast
        self.root = (args.root or (FAST_ROOT if args.fast else DEFAULT_ROOT)).resolve()
        self.out = args.out or (FAST_OUT if args.fast else DEFAULT_OUT)
        self.extras = extras_from(args.overrides, fast=args.fast)
        self.launcher = _check_launcher(args.launcher, args.jobs)
        self.jobs = args.jobs
        self.dry_run = args.dry_run
        self.selected = _selection(args.only)
        self.failed: list[str] = []

    def run(self) -> int:
        self.check_data()
        self.root.mkdir(parents=True, exist_ok=True)
        for name in self.selected:
            if name != BENCH:
                self.sweep(name)
        self.same_size()
        if BENCH in self.selected:
            self.bench()
        if self.dry_run:
            return 0
        summary = build(self.root, self.out, self.extras, copy_runs=not self.fast)
        announce(summary, self.out)
        if self.failed:
            print(f"failed: {', '.join(self.failed)} (logs in {self.root / 'logs'}; the report shows each reason)",
                  file=sys.stderr)
        return 1 if self.failed else 0

    def check_data(self) -> None:
        """Stop before hours of runs when a treebank a sweep needs is not there (MNIST is fetched when missing)."""
        for name in self.selected:
            if name == BENCH or experiment_task(name) not in TREEBANK_TASKS:
                continue
            for job in expand(name, self.extras):
                values = job.values
                kind = "tags" if job.task == "pos" else "dependency"
                explicit = [values[f"data.{split}"] for split in SPLITS if values.get(f"data.{split}")]
                for paths in explicit:
                    treebank_files(paths.strip("'\""))
                dataset = values.get("data.name", _default_dataset(job.task))
                if len(explicit) < len(SPLITS) and dataset not in ("null", None):
                    dataset_files(dataset, resolve_data_root(values.get("data.root")), kind=kind)

    def sweep(self, name: str) -> None:
        jobs = expand(name, self.extras)
        todo = [job for job in jobs if not load_run(self.root, job).finished]
        if not todo:
            print(f"{name}: all {len(jobs)} runs finished")
            return
        overrides = [f"+experiment={name}", *self.hydra_args(), *self.extras.for_task(experiment_task(name))]
        self.launch(name, f"{len(todo)} of {len(jobs)} runs to go", overrides, log_name=name)

    def same_size(self) -> None:
        """Full-backprop networks of each finished meSimp run's final widths (README-B's same-size rows)."""
        sources = list(dict.fromkeys(runs for _, runs in every_runs()
                                     if runs.same_size and runs.experiment in self.selected))
        for runs in sources:
            for job in expand(runs.experiment, self.extras):
                record = load_run(self.root, job)
                if not record.finished or not record.metrics.get("hidden_dims"):
                    continue  # the report says why the same-size run is missing
                twin = same_size_job(job, record.metrics["hidden_dims"])
                if not load_run(self.root, twin).finished:
                    hydra = [o for o in self.extras.for_task(twin.task) if is_hydra(o)]
                    self.launch(f"same size as {job.task}/{job.name}", "1 run",
                                [*self.hydra_args(), *hydra, *twin.overrides],
                                log_name=f"same_size.{twin.task}.{twin.name}")

    def hydra_args(self) -> list[str]:
        """The launcher, and one thread per run (--jobs runs share the cores). The user's hydra.* overrides
        (a SLURM partition, say) come after, with the other extras."""
        jobs = [f"hydra.launcher.n_jobs={self.jobs}"] if self.launcher == "local" else []
        return [f"hydra/launcher={self.launcher}", *jobs, "threads=1"]

    def launch(self, name: str, what: str, overrides: list[str], log_name: str) -> None:
        command = [sys.executable, "-m", "mesimp.train", "-m", *overrides]
        self.execute(name, what, command, self.root / "logs" / f"{log_name}.log")

    def bench(self) -> None:
        """Tables 7-8: the benchmark on the CPU, and on the GPU where there is one; alone, after the sweeps."""
        import torch

        for device in ("cpu", *(("cuda",) if torch.cuda.is_available() else ())):
            path = self.root / BENCH_DIR / f"{device}.json"
            if path.exists():
                print(f"{BENCH}: {path} exists")
                continue
            command = [sys.executable, "-m", "mesimp.bench", "--device", device, "--json", str(path),
                       *(FAST_BENCH_ARGS if self.fast else BENCH_ARGS)]
            self.execute(f"{BENCH} ({device})", "Tables 7-8", command, self.root / "logs" / f"{BENCH}.{device}.log")

    def execute(self, name: str, what: str, command: list[str], log: Path) -> None:
        printable = shlex.join(command[1:])
        if self.dry_run:
            print(f"{name}: {what}: MESIMP_RUNS={self.root} python {printable}")
            return
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"{name}: {what} (log: {log})", flush=True)
        start = time.monotonic()
        with log.open("a") as handle:
            handle.write(f"$ MESIMP_RUNS={self.root} python {printable}\n")
            handle.flush()
            result = subprocess.run(command, env={**os.environ, "MESIMP_RUNS": str(self.root)}, stdout=handle,
                                    stderr=subprocess.STDOUT)
        status = "done" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(f"{name}: {status} in {(time.monotonic() - start) / 60:.1f} min", flush=True)
        if result.returncode != 0:
            self.failed.append(name)


def _default_dataset(task: str) -> str | None:
    return OmegaConf.load(CONFIG_DIR / "task" / f"{task}.yaml").get("data", {}).get("name")


def _selection(only: str | None) -> list[str]:
    # cheap tasks first, so that a long reproduction has whole tables early
    order = {"mnist": 0, "parse": 1, "pos": 2}
    every = [*sorted(experiments(), key=lambda name: order.get(experiment_task(name), len(order))), BENCH]
    if not only:
        return every
    chosen = [name.strip() for name in only.split(",") if name.strip()]
    for name in chosen:
        if name != BENCH:
            check_experiment(name)
    return chosen


def _check_launcher(name: str, jobs: int) -> str:
    if jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    if name != "basic" and not (CONFIG_DIR / "hydra" / "launcher" / f"{name}.yaml").is_file():
        raise UserError(f"unknown launcher {name!r}; known: local, slurm, slurm_local, basic")
    plugin = LAUNCHER_PLUGINS.get(name)
    if plugin and not _installed(plugin):
        raise UserError(f"the {name} launcher needs its Hydra plugin: pip install -e \".[{EXTRAS[name]}]\" "
                        "(or --launcher basic: one run at a time)")
    return name


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent is missing too (no Hydra plugin at all)
        return False


def run_command(action: Callable[[], int]) -> None:
    """A resumable driver's exit: its status, one ``error:`` line for bad input, and a word on resuming after ^C."""
    try:
        sys.exit(action())
    except UserError as err:
        fail(str(err))
    except KeyboardInterrupt:
        print("interrupted: the same command resumes where this one stopped", file=sys.stderr)
        sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    run_command(lambda: Reproduction(parse_args(argv)).run())


if __name__ == "__main__":
    main()
