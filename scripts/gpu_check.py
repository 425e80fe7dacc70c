"""Check the GPU path on a machine with one (minutes): python scripts/gpu_check.py [--device cuda]

1. MNIST k=20, one epoch, on the GPU and on the CPU (the same command in two run roots): the accuracies agree
   within a point, and each device's seconds per epoch is printed.
2. Parsing and tagging, tiny runs on the GPU: they train and record the device.
3. A run cut after its first checkpoint on one device resumes on the other, both ways (a sampled rule, so the
   random draws' generator crosses too).

Needs the data under $MESIMP_DATA (MNIST and UD English-EWT); runs go to a temporary directory. Exit status 1 when a
check fails. ``--device cpu`` runs the same checks CPU against CPU (a dry run of this script).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MNIST = ["task=mnist", "k=20", "epochs=1", "evals_per_epoch=1"]
TINY = ["data.train_limit=200", "epochs=1", "evals_per_epoch=1", "model.hidden=[32]", "batch_size=20", "k=4"]


def train(runs: Path, *overrides: str) -> dict:
    """One training command; its metrics.json."""
    command = [sys.executable, "-m", "mesimp.train", *overrides]
    result = subprocess.run(command, env={**os.environ, "MESIMP_RUNS": str(runs)}, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"FAILED: {' '.join(overrides)}\n{result.stderr[-3000:]}")
    return json.loads(next(runs.glob("*/*/metrics.json")).read_text())


def cut_then_resume(root: Path, first: str, then: str) -> dict:
    """Train MNIST on ``first`` until its first checkpoint, then finish the same run on ``then``."""
    from hydra import compose, initialize_config_dir

    from mesimp.engine import trainer
    from mesimp.runner import run
    from mesimp.train import CONFIG_DIR

    def config(device: str):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name="train", overrides=[*TINY, "evals_per_epoch=4", "meprop.rule=unbiased",
                                                           f"device={device}"])

    save = trainer.save_checkpoint

    def save_then_stop(path, data):
        save(path, data)
        raise KeyboardInterrupt

    trainer.save_checkpoint = save_then_stop
    try:
        run(config(first), root)
    except KeyboardInterrupt:
        pass
    finally:
        trainer.save_checkpoint = save
    return run(config(then), root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the device checked against the CPU (default cuda)")
    gpu = parser.parse_args().device
    failures = []
    with tempfile.TemporaryDirectory(prefix="mesimp-gpu-check-") as tmp:
        root = Path(tmp)
        # 1. one root per device: a run is the same run on any device, so one root would hand back the first result
        on_gpu, on_cpu = (train(root / name, *MNIST, f"device={device}") for name, device in (("gpu", gpu),
                                                                                             ("cpu", "cpu")))
        for metrics in (on_gpu, on_cpu):
            print(f"MNIST k=20, 1 epoch on {metrics['device']}: dev {metrics['best_dev']:.2f}, test "
                  f"{metrics['final_test']:.2f}, {metrics['train_time_s']:.1f} s training "
                  f"({metrics['backprop_time_s']:.1f} s in the linear layers' backward)")
        gap = abs(on_gpu["final_test"] - on_cpu["final_test"])
        if gap > 1.0:
            failures.append(f"MNIST test accuracy differs by {gap:.2f} points between {gpu} and cpu")
        print(f"speedup of {gpu} over cpu: {on_cpu['train_time_s'] / on_gpu['train_time_s']:.1f}x")

        # 2. the treebank tasks' tensors and the LSTM on the device
        for task in ("parse", "pos"):
            metrics = train(root / task, f"task={task}", *TINY, f"device={gpu}")
            print(f"{task} (200 sentences) on {metrics['device']}: dev {metrics['best_dev']:.2f}")
            if not metrics["device"].startswith(gpu):
                failures.append(f"{task} ran on {metrics['device']}, not {gpu}")

        # 3. checkpoints cross devices
        for first, then in ((gpu, "cpu"), ("cpu", gpu)):
            metrics = cut_then_resume(root / f"resume-{first}-{then}", first, then)
            print(f"cut on {first}, resumed on {metrics['device']}: {metrics['steps']} steps, dev "
                  f"{metrics['best_dev']:.2f}")
            if metrics["steps"] != 10 or not metrics["device"].startswith(then):
                failures.append(f"the run cut on {first} did not finish on {then}: {metrics['steps']} steps on "
                                f"{metrics['device']}")
    for failure in failures:
        print(f"FAILED: {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
