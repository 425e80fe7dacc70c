"""Backward time of MePropLinear against nn.Linear, measured side by side in one process.

    python -m mesimp.bench [--repeats 200] [--json PATH]

For each shape the dense layer and the meProp layers share the same weights and inputs; repetitions
alternate between them so both see the same machine conditions. Each figure is the median of the timed
repetitions (warm-up excluded) of ``y.backward(dy)`` alone: the forward and the zeroing of ``.grad``
(the optimizer's business) are outside the clock. The input requires grad, as a hidden layer's does.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from mesimp.engine.io import write_json
from mesimp.nn import MePropLinear

# (batch, in, out, k): the paper's MNIST hidden layer at minibatch 100 (authors' reworked code) and 10 (paper);
# the parser's first layer (a minibatch of 10,000 transitions, 48 x 50 inputs), where per-example meProp matters most
SHAPES = [(100, 784, 500, 20), (10, 784, 500, 20), (10_000, 2400, 500, 20)]
LARGE = 10**9  # batch x in x out above which a shape gets few repetitions (each dense backward takes ~0.2 s)
SCOPES = ["example", "batch"]


@dataclass
class Result:
    batch: int
    in_features: int
    out_features: int
    k: int
    scope: str
    dense_ms: float
    meprop_ms: float
    ratio: float
    ideal: float


def time_backward(layer: nn.Module, x: torch.Tensor, dy: torch.Tensor) -> float:
    for p in layer.parameters():
        if p.grad is not None:
            p.grad.zero_()
    x.grad = None
    y = layer(x)
    start = time.perf_counter()
    y.backward(dy)
    return time.perf_counter() - start


def bench_shape(batch: int, n_in: int, n_out: int, k: int, repeats: int, warmup: int) -> list[Result]:
    torch.manual_seed(0)
    dense = nn.Linear(n_in, n_out)
    sparse = {scope: MePropLinear.from_linear(dense, k, scope=scope) for scope in SCOPES}
    x = torch.randn(batch, n_in, requires_grad=True)
    dy = torch.randn(batch, n_out)
    times: dict[str, list[float]] = {"dense": [], **{scope: [] for scope in SCOPES}}
    for rep in range(warmup + repeats):
        for name, layer in [("dense", dense), *sparse.items()]:
            elapsed = time_backward(layer, x, dy)
            if rep >= warmup:
                times[name].append(elapsed)
    dense_s = statistics.median(times["dense"])
    return [
        Result(batch, n_in, n_out, k, scope, dense_s * 1e3, statistics.median(times[scope]) * 1e3,
               dense_s / statistics.median(times[scope]), n_out / k)
        for scope in SCOPES
    ]


def format_table(results: list[Result]) -> str:
    lines = ["| batch | in -> out | k | scope | dense backward (ms) | meProp backward (ms) | ratio | ideal |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.batch} | {r.in_features} -> {r.out_features} | {r.k} | {r.scope} | {r.dense_ms:.3f} "
                     f"| {r.meprop_ms:.3f} | {r.ratio:.1f}x | {r.ideal:.0f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = [
        r
        for shape in SHAPES
        for r in bench_shape(*shape, **(dict(repeats=args.repeats, warmup=args.warmup)
                                        if shape[0] * shape[1] * shape[2] < LARGE else dict(repeats=10, warmup=2)))
    ]
    print(format_table(results))
    if args.json:
        write_json(args.json, {
            "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "repeats": args.repeats, "warmup": args.warmup, "results": [asdict(r) for r in results],
        })


if __name__ == "__main__":
    main()
