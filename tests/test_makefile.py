"""`make test` and `make train` set up their environment first (.venv, or the active virtual environment), and only
again when pyproject.toml changes (dry runs: `make -n` prints what would run)."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path) -> Path:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def dry_run(project: Path, target: str, virtual_env: str | None = None) -> list[str]:
    # not the settings of a make this test may run under (`make test`): they would make this one a sub-make
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    if virtual_env:
        env["VIRTUAL_ENV"] = virtual_env
    result = subprocess.run(["make", "-n", target], cwd=project, env=env, capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def test_a_fresh_clone_gets_a_venv_then_the_tests(project):
    lines = dry_run(project, "test")
    assert lines[0] == "test -x .venv/bin/python || python3 -m venv .venv"
    assert any('.venv/bin/python -m pip install -e ".[dev,sweep,report,slurm]"' in line for line in lines)
    assert lines[-1] == ".venv/bin/python -m pytest -q"


def test_the_environment_is_redone_only_when_pyproject_changes(project):
    (project / ".venv").mkdir()
    stamp = project / ".venv" / ".mesimp-installed"
    stamp.touch()
    assert dry_run(project, "train") == [".venv/bin/python -m mesimp.train "]
    time.sleep(1.1)  # file systems with one-second mtimes
    (project / "pyproject.toml").touch()
    assert any("pip install -e" in line for line in dry_run(project, "train"))


def test_an_active_virtual_environment_is_used(project, tmp_path):
    lines = dry_run(project, "test", virtual_env=str(tmp_path / "myenv"))
    assert lines[-1] == f"{tmp_path / 'myenv'}/bin/python -m pytest -q" and not any(".venv" in line for line in lines)
