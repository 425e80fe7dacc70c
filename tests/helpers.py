"""Running the real entrypoint: composing its config in-process, or the command line in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from mesimp.train import CONFIG_DIR


def compose_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def train(*overrides: str, runs: Path, data: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MESIMP_RUNS": str(runs)}
    if data is not None:
        env["MESIMP_DATA"] = str(data)
    return subprocess.run([sys.executable, "-m", "mesimp.train", *overrides], env=env, capture_output=True,
                          text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and fragment in lines[-1], result.stderr
    assert "Traceback" not in result.stderr and len([ln for ln in lines if ln.startswith("error:")]) == 1
