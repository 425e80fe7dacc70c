"""Backward of single meProp layers against their dense selves: linear layers over the paper's shapes, the LSTM,
and the backward's peak memory."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mesimp.bench.timing import side_by_side, synchronize
from mesimp.nn import MePropLinear, MePropLSTM

# name: (batch, in, out, ks). The paper's MNIST hidden layer at minibatch 10 (paper) and 100 (authors' reworked
# code); the parser's two hidden layers (minibatch 10,000 transitions, 48 x 50 inputs); Table 7's synthetic
# large layer (batch 1024, h = 8192).
LINEAR_CASES = {
    "mnist-b10": (10, 784, 500, [20, 80]),
    "mnist-b100": (100, 784, 500, [20, 80]),
    "parse-hidden1": (10_000, 2400, 500, [20]),
    "parse-hidden2": (10_000, 500, 500, [20]),
    "table7": (1024, 8192, 8192, [8, 16, 32, 64, 128, 256, 512]),
}
QUICK_CASES = {"mnist-b100": (100, 784, 500, [20]), "small-parse": (1000, 2400, 500, [20])}
# (scope, select, rule): the paper's four, and per-example top-k under the weight-gradient rules that train
VARIANTS = [("example", "topk", "topk"), ("batch", "topk", "topk"), ("example", "random", "topk"),
            ("batch", "random", "topk"), ("example", "topk", "unbiased"), ("example", "topk", "centred"),
            ("example", "topk", "unbiased_centred")]


@dataclass
class LayerResult:
    group: str  # "layer" (one linear layer), "mlp" (a whole MLP) or "lstm"
    case: str
    batch: int
    in_features: int
    out_features: int
    k: int
    scope: str
    select: str
    dense_ms: float
    meprop_ms: float
    ratio: float
    ideal: float
    rule: str = "topk"
    gates: str = "joint"  # the LSTM's: top-k over all 4h gate entries, or k in each gate (per_gate)
    input_grad: str = "topk"  # the LSTM's dL/dx: from the kept entries, or the whole dL/dz (dense)


def _backward_timer(layer: nn.Module, inputs: tuple, dy: torch.Tensor, device: torch.device):
    """Times one ``backward`` of ``layer(*inputs)``; the forward is outside the clock."""
    import time

    def run() -> float:
        for tensor in inputs:
            # the input stands for the layer below: its gradient is passed on, not summed into a leaf's .grad
            # (that sum is a full-size read-modify-write that would land in both contenders' clocks)
            if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
                tensor.grad = None
        out = layer(*inputs)
        synchronize(device)
        start = time.perf_counter()
        out.backward(dy)
        synchronize(device)
        return time.perf_counter() - start

    return run


def _dense_grads(module: nn.Module) -> None:
    """Dense .grad buffers, as the runner keeps them (zero_grad(set_to_none=False))."""
    for p in module.parameters():
        p.grad = torch.zeros_like(p)


def bench_linear(case: str, batch: int, n_in: int, n_out: int, ks: list[int], repeats: int, warmup: int,
                 device: torch.device, variants=VARIANTS) -> list[LayerResult]:
    torch.manual_seed(0)
    dense = nn.Linear(n_in, n_out, device=device)
    _dense_grads(dense)
    x = torch.randn(batch, n_in, device=device, requires_grad=True)  # a hidden layer's input needs its gradient
    dy = torch.randn(batch, n_out, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    contenders = {"dense": _backward_timer(dense, (x,), dy, device)}
    for k in ks:
        for scope, select, rule in variants:
            layer = MePropLinear.from_linear(dense, k, scope=scope, select=select, rule=rule, generator=generator,
                                             grad_in_place=True)  # as the training loop builds them
            contenders[f"{k}/{scope}/{select}/{rule}"] = _backward_timer(layer, (x,), dy, device)
    times = side_by_side(contenders, repeats, warmup)
    return [LayerResult("layer", case, batch, n_in, n_out, k, scope, select, times["dense"] * 1e3,
                        times[f"{k}/{scope}/{select}/{rule}"] * 1e3,
                        times["dense"] / times[f"{k}/{scope}/{select}/{rule}"], n_out / k, rule)
            for k in ks for scope, select, rule in variants]


def bench_mlp(case: str, batch: int, hidden: int, ks: list[int], repeats: int, warmup: int, device: torch.device,
              variants=(("batch", "topk"), ("example", "topk"))) -> list[LayerResult]:
    """Table 8's setting: the whole MNIST MLP 784-h-h-10's backward, meProp on both hidden layers."""
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                          nn.Linear(hidden, 10)).to(device)
    _dense_grads(dense)
    x = torch.rand(batch, 784, device=device)  # pixels: no gradient needed
    dy = torch.randn(batch, 10, device=device)
    contenders = {"dense": _backward_timer(dense, (x,), dy, device)}
    for k in ks:
        for scope, select in variants:
            sparse = nn.Sequential(*[MePropLinear.from_linear(layer, k, scope=scope, select=select)
                                     if i in (0, 2) else layer for i, layer in enumerate(dense)])
            contenders[f"{k}/{scope}/{select}"] = _backward_timer(sparse, (x,), dy, device)
    times = side_by_side(contenders, repeats, warmup)
    return [LayerResult("mlp", case, batch, 784, hidden, k, scope, select, times["dense"] * 1e3,
                        times[f"{k}/{scope}/{select}"] * 1e3, times["dense"] / times[f"{k}/{scope}/{select}"],
                        hidden / k)
            for k in ks for scope, select in variants]


def sentence_lengths(sentences: int, seed: int = 0) -> torch.Tensor:
    """Sentence lengths like EWT's (mean about 16, long tail): 1 + a geometric-ish draw, capped at 60."""
    g = torch.Generator().manual_seed(seed)
    return (1 + torch.empty(sentences).exponential_(1 / 15, generator=g)).long().clamp(max=60)


def bench_lstm(case: str, sentences: int, ks: list[int], repeats: int, warmup: int, device: torch.device,
               n_in: int = 190, hidden: int = 500) -> list[LayerResult]:
    """The tagger's LSTM (190 -> 4 x 500 gates): meProp against the same layer's dense backward."""
    torch.manual_seed(0)
    dense = MePropLSTM(n_in, hidden).to(device)
    _dense_grads(dense)
    lengths = sentence_lengths(sentences) if sentences > 1 else torch.tensor([25])
    steps = int(lengths.max())
    x = torch.randn(steps, sentences, n_in, device=device, requires_grad=True)
    dy = torch.randn(steps, sentences, hidden, device=device)
    contenders = {"dense": _backward_timer(dense, (x, lengths), dy, device)}
    variants = [("example", "topk", "joint", "topk"), ("batch", "topk", "joint", "topk"),
                ("example", "topk", "per_gate", "topk"), ("example", "topk", "per_gate", "dense")]
    settings = [(k, *variant) for k in ks for variant in variants]  # (k, scope, select, gates, input_grad)
    for setting in settings:
        k, scope, select, gates, input_grad = setting
        layer = MePropLSTM(n_in, hidden, k, scope, select, gates=gates, input_grad=input_grad).to(device)
        layer.load_state_dict(dense.state_dict())
        _dense_grads(layer)
        contenders[str(setting)] = _backward_timer(layer, (x, lengths), dy, device)
    times = side_by_side(contenders, repeats, warmup)
    tokens = int(lengths.sum())
    kept = {"joint": 1, "per_gate": 4}  # entries kept per k
    results = []
    for setting in settings:
        k, scope, select, gates, input_grad = setting
        seconds = times[str(setting)]
        results.append(LayerResult("lstm", case, tokens, n_in + hidden, 4 * hidden, k, scope, select,
                                   times["dense"] * 1e3, seconds * 1e3, times["dense"] / seconds,
                                   4 * hidden / (kept[gates] * k), gates=gates, input_grad=input_grad))
    return results


def backward_peak_bytes(batch: int, n_in: int, n_out: int, k: int | None, scope: str = "example") -> int:
    """The most memory one backward holds at once beyond what existed before it (dense .grad buffers kept).

    From the profiler's memory records: every operator's own allocations and frees, in the order they ran.
    """
    torch.manual_seed(0)
    layer = MePropLinear(n_in, n_out, k, scope=scope)
    _dense_grads(layer)
    x = torch.randn(batch, n_in, requires_grad=True)
    out = layer(x)
    dy = torch.randn_like(out)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        out.backward(dy)
    held = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        held += event.self_cpu_memory_usage
        peak = max(peak, held)
    return peak
