"""Predict with a trained model: ``python -m mesimp.predict MODEL INPUT [-o OUTPUT]``.

MODEL is a run directory or a file written by ``python -m mesimp.export``. INPUT (``-``: standard input) is

- for a parser or a tagger, a CoNLL-U file: the parser fills HEAD and DEPREL, the tagger XPOS or UPOS (the tag set
  it was trained on); every other column, and every comment, multiword-token and empty-node line, is written back
  as it was;
- for an MNIST model, an IDX images file (gzipped or not): the output is one predicted label a line.

OUTPUT defaults to standard output. Sentences (images) go through the model in batches, longest first; a progress
bar and, at the end, the speed go to standard error. Bad input is one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from mesimp.data.conllu_edit import fill_columns
from mesimp.data.idx import read_idx
from mesimp.data.mnist import image_features  # the pixels as training read them
from mesimp.data.treebank import read_conll
from mesimp.engine.io import write_text
from mesimp.errors import UserError
from mesimp.export import FORMAT as MLP_FORMAT
from mesimp.engine.device import DEVICES, resolve_device
from mesimp.export import mlp_model, model_data, treebank_model

GZIP_MAGIC, IDX_MAGIC = b"\x1f\x8b", b"\x00\x00\x08"  # an IDX file of unsigned bytes begins 00 00 08
DEFAULT_BATCH = 512


def load_model(path: Path, device: torch.device):
    """The model of a run directory or an exported file, on ``device``: an MLP (``nn.Sequential``), a Parser or a
    Tagger (each moves its batches to where its model is)."""
    data = model_data(path)
    if data["format"] == MLP_FORMAT:
        return mlp_model(data, path).to(device)
    model = treebank_model(data, path)
    model.task.model.to(device)
    return model


def in_batches(sizes: list[int], run: Callable[[list[int]], list], batch_size: int, unit: str) -> list:
    """``run`` on the items' indices, ``batch_size`` items at a time, biggest first (similar lengths pad little);
    the results in the items' order. The progress bar on stderr counts ``unit``s, ``sizes`` of them per item."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    results: list = [None] * len(sizes)
    with tqdm(total=sum(sizes), unit=unit, unit_scale=True, disable=None, file=sys.stderr, leave=False) as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            for i, result in zip(batch, run(batch)):
                results[i] = result
            bar.update(sum(sizes[i] for i in batch))
    return results


@contextmanager
def input_file(name: str) -> Iterator[Path]:
    """INPUT as a path (the readers take paths): standard input is saved to a temporary file first, and messages
    that name that file say ``<stdin>`` instead."""
    if name != "-":
        yield Path(name)
        return
    data = sys.stdin.buffer.read()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("stdin.gz" if data.startswith(GZIP_MAGIC) else "stdin")  # read_idx goes by suffix
        path.write_bytes(data)
        try:
            yield path
        except UserError as err:
            raise type(err)(str(err).replace(str(path), "<stdin>")) from None


def _is_idx(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            head = file.read(len(IDX_MAGIC))
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror or err}") from None
    return head.startswith(GZIP_MAGIC) or head == IDX_MAGIC


def annotate_conllu(model, path: Path, batch_size: int) -> tuple[str, str]:
    """The CoNLL-U text of ``path`` with the model's columns filled in, and a line on what was done how fast."""
    if _is_idx(path):
        raise UserError(f"{path}: an IDX file (images), but the model is a {type(model).__name__.lower()}, which "
                        "reads CoNLL-U")
    sentences = read_conll(path)
    start = time.perf_counter()
    values = in_batches([len(s) for s in sentences], lambda batch: model.annotate([sentences[i] for i in batch]),
                        batch_size, "tok")
    seconds = time.perf_counter() - start
    tokens = sum(map(len, sentences))
    text = fill_columns(path.read_bytes().decode("utf-8-sig"), (token for sentence in values for token in sentence))
    return text, (f"{len(sentences):,} sentences, {tokens:,} tokens in {seconds:.2f} s: "
                  f"{tokens / max(seconds, 1e-9):,.0f} tokens/s")


def classify_images(model: nn.Sequential, path: Path, batch_size: int) -> tuple[str, str]:
    """One predicted label a line for the images of ``path``, and a line on how fast."""
    if not _is_idx(path):
        raise UserError(f"{path}: not an IDX file, but the model is an MNIST MLP, which reads IDX images (gzipped or "
                        "not)")
    images = read_idx(path)
    inputs = model[0].in_features
    if images.dim() != 3 or images.shape[1] * images.shape[2] != inputs:
        raise UserError(f"{path}: IDX data of shape {list(images.shape)}, but the model takes images of {inputs} "
                        "pixels (N x height x width)")
    x = image_features(images).to(next(model.parameters()).device)
    start = time.perf_counter()
    with torch.no_grad():
        labels = in_batches([1] * len(x), lambda batch: model(x[batch]).argmax(1).tolist(), batch_size, "img")
    seconds = time.perf_counter() - start
    return "".join(f"{label}\n" for label in labels), (f"{len(x):,} images in {seconds:.2f} s: "
                                                        f"{len(x) / max(seconds, 1e-9):,.0f} images/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mesimp.predict", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a run directory, or a file of python -m mesimp.export")
    parser.add_argument("input", help="CoNLL-U (parser, tagger) or IDX images (MNIST); - for standard input")
    parser.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"sentences or images per batch (default {DEFAULT_BATCH})")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto (the GPU when there is one), cpu "
                        "or cuda")
    args = parser.parse_args(argv)
    for option in ("batch_size", "threads"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        model = load_model(args.model, resolve_device(args.device))
        predict = classify_images if isinstance(model, nn.Sequential) else annotate_conllu
        with input_file(args.input) as path:
            text, summary = predict(model, path, args.batch_size)
        if args.output is None:
            sys.stdout.write(text)
        else:
            write_text(args.output, text)
    except (UserError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"predicted {summary}", file=sys.stderr)


if __name__ == "__main__":
    main()
