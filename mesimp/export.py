"""Export a trained run as one file: ``python -m mesimp.export RUN_DIR OUT``; ``mesimp.predict`` runs it.

Every file is a dict that ``torch.load(OUT, weights_only=True)`` reads (tensors, dicts, lists, strings, numbers),
with a ``format`` and the final model's weights (what checkpoint.pt holds at the end of a run).

An MNIST run's (``mesimp-mlp-v1``) needs neither mesimp nor the training config: widths are read from the weights
(meSimp may have shrunk the hidden layers), and the weights are stored in the layout of an ``nn.Sequential`` of
``Linear, ReLU, ..., Linear``. Load it with nothing but torch::

    import torch
    from torch import nn
    f = torch.load("model.pt", weights_only=True)
    c = f["config"]; w = [c["in_features"], *c["hidden"], c["out_features"]]
    layers = [m for a, b in zip(w, w[1:]) for m in (nn.Linear(a, b), nn.ReLU())][:-1]
    model = nn.Sequential(*layers); model.load_state_dict(f["state_dict"]); model.eval()

The training-time dropout is left out: in eval mode it is the identity, so outputs match the trained model's.

A parser's (``mesimp-parser-v1``) and a tagger's (``mesimp-tagger-v1``) also hold what their features need:
vocabularies, tag and label sets, feature settings (lowercasing, tag set, label subtypes), embedding sizes and
widths. The vocabularies are not in checkpoint.pt: they are rebuilt from the run's training data, as the config the
run saved (.hydra/config.yaml) names it, once its digests match identity.json's. The layout is mesimp's, since the
features and decoding are (contents: mesimp/tasks/parse/exported.py, mesimp/tasks/pos/exported.py). In Python,
``model_data(PATH)`` reads a file or a run directory alike, and for a parser (a tagger likewise, with
``mesimp.tasks.pos.exported.Tagger``) ``Parser.from_file(model_data(PATH), PATH).annotate(sentences)`` with
``mesimp.tasks.parse.exported.Parser`` and ``sentences = mesimp.data.treebank.read_conll(FILE)``.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torch import Tensor, nn

from mesimp.engine.io import save_checkpoint
from mesimp.engine.trainer import CHECKPOINT
from mesimp.errors import UserError
from mesimp.model_file import load_weights, read_torch_file
from mesimp.tasks.parse import exported as parser_file
from mesimp.tasks.pos import exported as tagger_file
from mesimp.trained_run import check_training_data, metrics_task, model_state, run_config, run_task

FORMAT = "mesimp-mlp-v1"
# The treebank tasks' file formats, each a module with TASK, FORMAT, KIND, pack, describe and load
TREEBANK_BY_TASK = {module.TASK: module for module in (parser_file, tagger_file)}
TREEBANK_BY_FORMAT = {module.FORMAT: module for module in (parser_file, tagger_file)}
FORMATS = (FORMAT, *TREEBANK_BY_FORMAT)
_HIDDEN_KEY = re.compile(r"hidden\.(\d+)\.(weight|bias)")


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


def _mlp_data(run_dir: Path, state: dict) -> dict:
    layers = _mlp_layers(state, run_dir / CHECKPOINT)
    config = {
        "in_features": int(layers[0][0].shape[1]),
        "hidden": [int(weight.shape[0]) for weight, _ in layers[:-1]],
        "out_features": int(layers[-1][0].shape[0]),
        "activation": "relu",
        "task": metrics_task(run_dir),  # metadata only: a missing or odd metrics.json must not block an export
    }
    # Sequential indices: Linear at even positions, ReLU (no parameters) in between.
    sequential_state = {}
    for i, (weight, bias) in enumerate(layers):
        sequential_state[f"{2 * i}.weight"] = weight
        sequential_state[f"{2 * i}.bias"] = bias
    return {"format": FORMAT, "config": config, "state_dict": sequential_state}


def _treebank_data(run_dir: Path, task: str, state: dict) -> dict:
    module = TREEBANK_BY_TASK[task]
    cfg = run_config(run_dir)
    check_training_data(run_dir, cfg, module.KIND)
    try:
        data = module.pack(cfg, state)
    except KeyError as err:
        raise UserError(f"{run_dir / CHECKPOINT} does not hold a {task} model: no {err}") from None
    treebank_model(data, run_dir)  # the rebuilt vocabularies must fit the weights
    return data


def run_data(run_dir: Path) -> dict:
    """What the export of ``run_dir`` holds (what ``python -m mesimp.export`` writes), built in memory."""
    run_dir = Path(run_dir)
    state = model_state(run_dir)
    task = run_task(run_dir)
    return _treebank_data(run_dir, task, state) if task in TREEBANK_BY_TASK else _mlp_data(run_dir, state)


def model_data(path: Path) -> dict:
    """An exported file's contents, or a run directory's as its export would hold them."""
    path = Path(path)
    if path.is_dir():
        return run_data(path)
    foreign = path.is_file() and not zipfile.is_zipfile(path)  # torch.save writes zip archives
    data = None if foreign else read_torch_file(path)
    if not isinstance(data, dict) or data.get("format") not in FORMATS:
        raise UserError(f"{path} is neither a run directory nor a file of python -m mesimp.export "
                        f"({', '.join(FORMATS)})")
    return data


def treebank_model(data: dict, source: Path | str) -> parser_file.Parser | tagger_file.Tagger:
    """The parser or tagger of an export's contents (``data``, from ``model_data``)."""
    with _malformed(data, source):
        return TREEBANK_BY_FORMAT[data["format"]].load(data, source)


@contextmanager
def _malformed(data: dict, source: Path | str) -> Iterator[None]:
    """A file with the right format name but missing or odd contents is one UserError, not a traceback."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UserError(f"{source}: a malformed {data.get('format')} file ({type(err).__name__}: {err})") from None


def export_run(run_dir: Path, out: Path) -> dict:
    """Write the export of ``run_dir`` to ``out``; returns what it holds."""
    data = run_data(run_dir)
    # Plain CPU tensors that own their memory: a slice of a larger storage would save the whole storage.
    data["state_dict"] = {key: value.detach().to("cpu").contiguous().clone()
                          for key, value in data["state_dict"].items()}
    save_checkpoint(Path(out), data)
    return data


def build_plain_mlp(config: dict) -> nn.Sequential:
    """The exported architecture from torch.nn alone (same construction as the docstring's snippet)."""
    widths = [config["in_features"], *config["hidden"], config["out_features"]]
    layers = [m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.ReLU())][:-1]
    return nn.Sequential(*layers)


def mlp_model(data: dict, source: Path | str) -> nn.Sequential:
    """The eval-mode ``nn.Sequential`` of a ``mesimp-mlp-v1`` file's contents."""
    if data.get("format") != FORMAT:
        raise UserError(f"{source} is not a {FORMAT} file")
    with _malformed(data, source):
        model = build_plain_mlp(data["config"])
        load_weights(model, data["state_dict"], source)
    return model.eval()


def load_exported(path: Path) -> nn.Sequential:
    """Rebuild an exported MLP file as an eval-mode ``nn.Sequential``."""
    data = read_torch_file(Path(path))
    return mlp_model(data if isinstance(data, dict) else {}, path)


def describe(data: dict) -> str:
    """One line on what an export holds."""
    if data["format"] in TREEBANK_BY_FORMAT:
        return TREEBANK_BY_FORMAT[data["format"]].describe(data)
    config = data["config"]
    widths = [config["in_features"], *config["hidden"], config["out_features"]]
    n_params = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    return f"MLP {'-'.join(map(str, widths))}, {n_params:,} parameters"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mesimp.export", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="training run directory holding checkpoint.pt")
    parser.add_argument("out", type=Path, help="file to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        data = export_run(args.run_dir, args.out)
    except (UserError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {args.out}: {describe(data)}")


if __name__ == "__main__":
    main()
