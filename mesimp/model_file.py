"""Model files read safely: plain contents only (``weights_only``), and weights that must fit the model built for
them; anything else is a one-line UserError naming the file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mesimp.errors import UserError


def read_torch_file(path: Path) -> object:
    if not Path(path).is_file():
        raise UserError(f"no file {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or foreign files; all mean "unreadable"
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"cannot read {path}: {first_line}") from None


def load_weights(model: nn.Module, state: dict, source: Path | str) -> None:
    """``model.load_state_dict(state)``, every key and shape required to match."""
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as err:
        lines = [line.strip() for line in str(err).strip().splitlines()]
        detail = lines[1] if len(lines) > 1 else lines[0]  # torch's first line only names the model class
        raise UserError(f"{source}: weights do not fit the model its settings and vocabularies describe: "
                        f"{detail}") from None
