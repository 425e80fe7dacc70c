"""Export a trained MLP run as a plain-PyTorch file: ``python -m mesimp.export RUN_DIR OUT``.

The file needs neither mesimp nor the training config: widths are read from the weights (meSimp may have
shrunk the hidden layers), and the weights are stored in the layout of an ``nn.Sequential`` of
``Linear, ReLU, ..., Linear``. Load it with nothing but torch::

    import torch
    from torch import nn
    f = torch.load("model.pt", weights_only=True)
    c = f["config"]; w = [c["in_features"], *c["hidden"], c["out_features"]]
    layers = [m for a, b in zip(w, w[1:]) for m in (nn.Linear(a, b), nn.ReLU())][:-1]
    model = nn.Sequential(*layers); model.load_state_dict(f["state_dict"]); model.eval()

The training-time dropout is left out: in eval mode it is the identity, so outputs match the trained model's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from mesimp.engine.io import save_checkpoint
from mesimp.errors import UserError

FORMAT = "mesimp-mlp-v1"
_HIDDEN_KEY = re.compile(r"hidden\.(\d+)\.(weight|bias)")


def _load(path: Path) -> object:
    if not path.is_file():
        raise UserError(f"no file {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or foreign files; all mean "unreadable"
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"cannot read {path}: {first_line}") from None


def _mlp_layers(state: dict, source: Path) -> list[tuple[Tensor, Tensor]]:
    """(weight, bias) per layer, hidden ones first; refuses anything that is not exactly an MLP state_dict."""
    indices = {int(m.group(1)) for key in state if (m := _HIDDEN_KEY.fullmatch(str(key)))}
    names = [f"hidden.{i}" for i in range(len(indices))] + ["output"]
    expected = {f"{name}.{part}" for name in names for part in ("weight", "bias")}
    if set(state) != expected:
        odd = sorted(map(str, set(state) ^ expected))
        raise UserError(f"{source} does not hold an MLP (hidden.0..N, output): unexpected or missing {odd[:3]}")
    layers = [(state[f"{name}.weight"], state[f"{name}.bias"]) for name in names]
    for i, (weight, bias) in enumerate(layers):
        fits_previous = i == 0 or weight.shape[1:] == layers[i - 1][0].shape[:1]
        if weight.dim() != 2 or bias.shape != weight.shape[:1] or not fits_previous:
            raise UserError(f"{source}: layer {names[i]} has inconsistent shapes {tuple(weight.shape)}")
    return layers


def _task(run_dir: Path) -> str | None:
    # Metadata only: a missing or odd metrics.json must not block an export.
    try:
        task = json.loads((run_dir / "metrics.json").read_text()).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if isinstance(task, str) else None


def export_mlp(run_dir: Path, out: Path) -> dict:
    """Write ``run_dir``'s MLP to ``out`` as a mesimp-free file; returns its config."""
    checkpoint_path = Path(run_dir) / "checkpoint.pt"
    if not checkpoint_path.is_file():
        raise UserError(f"no checkpoint at {checkpoint_path}")
    checkpoint = _load(checkpoint_path)
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{checkpoint_path} has no 'model' state_dict")
    layers = _mlp_layers(state, checkpoint_path)
    config = {
        "in_features": int(layers[0][0].shape[1]),
        "hidden": [int(weight.shape[0]) for weight, _ in layers[:-1]],
        "out_features": int(layers[-1][0].shape[0]),
        "activation": "relu",
        "task": _task(Path(run_dir)),
    }
    # Sequential indices: Linear at even positions, ReLU (no parameters) in between.
    sequential_state = {}
    for i, (weight, bias) in enumerate(layers):
        sequential_state[f"{2 * i}.weight"] = weight.detach().to("cpu").contiguous().clone()
        sequential_state[f"{2 * i}.bias"] = bias.detach().to("cpu").contiguous().clone()
    save_checkpoint(Path(out), {"format": FORMAT, "config": config, "state_dict": sequential_state})
    return config


def build_plain_mlp(config: dict) -> nn.Sequential:
    """The exported architecture from torch.nn alone (same construction as the docstring's snippet)."""
    widths = [config["in_features"], *config["hidden"], config["out_features"]]
    layers = [m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.ReLU())][:-1]
    return nn.Sequential(*layers)


def load_exported(path: Path) -> nn.Sequential:
    """Rebuild an exported file as an eval-mode ``nn.Sequential``."""
    data = _load(Path(path))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path} is not a {FORMAT} file")
    model = build_plain_mlp(data["config"])
    try:
        model.load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as err:
        raise UserError(f"{path}: weights do not fit its config: {str(err).splitlines()[0]}") from None
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mesimp.export", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="training run directory holding checkpoint.pt")
    parser.add_argument("out", type=Path, help="file to write")
    args = parser.parse_args(argv)
    try:
        config = export_mlp(args.run_dir, args.out)
    except (UserError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    widths = [config["in_features"], *config["hidden"], config["out_features"]]
    n_params = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    print(f"wrote {args.out}: MLP {'-'.join(map(str, widths))}, {n_params:,} parameters")


if __name__ == "__main__":
    main()
