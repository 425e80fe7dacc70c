"""Composing the runner's real config in-process, as `python -m mesimp.train` would."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from mesimp.train import CONFIG_DIR


def compose_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))
