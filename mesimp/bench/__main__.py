"""The speed benchmark suite: every figure a ratio measured side by side in one process.

    python -m mesimp.bench [--groups layer,lstm,memory,epoch,decode] [--quick] [--device cpu|cuda|auto]
                           [--repeats N] [--cases mnist-b100,...] [--json PATH]

Groups: ``layer`` (one linear layer's backward, dense vs every meProp scope and select, over the paper's
shapes including Table 7's), ``mlp`` (Table 8: the whole MNIST MLP at h = 8192), ``lstm`` (the tagger's LSTM backward, one sentence and 32), ``memory`` (how far one
backward raises peak memory), ``epoch`` (a whole training epoch per task, dense vs meProp, with losses),
``decode`` (a meSimp-sized parser against the 500-wide one). ``--quick`` shrinks every group to seconds.
"""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch

from mesimp.bench.layers import LINEAR_CASES, QUICK_CASES, backward_peak_bytes, bench_linear, bench_lstm, bench_mlp
from mesimp.bench.tasks import EPOCH_CASES, bench_epoch, bench_parser_decoding
from mesimp.engine.io import write_json
from mesimp.engine.denormals import flush_denormals
from mesimp.engine.device import DEVICES, describe_device, resolve_device
from mesimp.engine.memory import keep_freed_memory
from mesimp.errors import UserError
from mesimp.nn import kernels
from mesimp.runner import code_version

GROUPS = ("layer", "mlp", "lstm", "memory", "epoch", "decode")


def run_groups(groups: list[str], quick: bool, device: torch.device, repeats: int | None,
               cases: list[str] | None = None) -> list[dict]:
    results: list[dict] = []
    reps = repeats or (5 if quick else 50)
    if "layer" in groups:
        for case, (batch, n_in, n_out, ks) in (QUICK_CASES if quick else LINEAR_CASES).items():
            if cases and case not in cases:
                continue
            big = batch * n_in * n_out > 10**10
            results += [asdict(r) for r in bench_linear(case, batch, n_in, n_out, ks, repeats=3 if big else reps,
                                                        warmup=1 if big else max(1, reps // 10), device=device)]
    if "mlp" in groups:  # Table 8: the MNIST MLP at h = 8192, minibatch 50 (the authors' unified-top-k code)
        hidden, ks = (1024, [8, 64]) if quick else (8192, [8, 16, 32, 64, 128, 256, 512])
        results += [asdict(r) for r in bench_mlp("table8", 50, hidden, ks, repeats=3 if not quick else reps,
                                                 warmup=1, device=device)]
    if "lstm" in groups:
        for case, sentences in (("one-sentence", 1), ("minibatch-32", 32)):
            results += [asdict(r) for r in bench_lstm(case, sentences, [5, 10], reps, max(1, reps // 10), device)]
    if "memory" in groups and device.type == "cpu":
        batch, n_in, n_out = (256, 2048, 2048) if quick else (1024, 8192, 8192)
        for k, scope in ((None, "example"), (64, "example"), (64, "batch")):
            results.append({"group": "memory", "batch": batch, "in_features": n_in, "out_features": n_out, "k": k,
                            "scope": scope, "peak_growth_bytes": backward_peak_bytes(batch, n_in, n_out, k, scope)})
    if "epoch" in groups:
        for case in EPOCH_CASES:
            results.append(asdict(bench_epoch(case, device, max_steps=5 if quick else None,
                                              train_limit=200 if quick else None, repeats=1 if quick else 3)))
    if "decode" in groups:
        results += [asdict(r) for r in bench_parser_decoding(device, train_limit=200 if quick else None)]
    return results


# One Markdown table per kind of result: the groups it shows, its header, and one row of it.
TABLES = [
    (("layer", "mlp", "lstm"),
     "| layer | batch (tokens) | in -> out | k | scope | select | rule | dense (ms) | meProp (ms) | ratio | ideal |",
     lambda r: f"| {r['case']} | {r['batch']} | {r['in_features']} -> {r['out_features']} | {r['k']} | {r['scope']} "
               f"| {r['select']}{', per gate' if r.get('gates') == 'per_gate' else ''}"
               f"{', dense dL/dx' if r.get('input_grad') == 'dense' else ''} | {r.get('rule', 'topk')} "
               f"| {r['dense_ms']:.3f} | {r['meprop_ms']:.3f} "
               f"| {r['ratio']:.1f}x | {r['ideal']:.0f}x |"),
    (("memory",), "| backward peak memory | k | scope | growth (MiB) |",
     lambda r: f"| {r['batch']} x {r['in_features']} -> {r['out_features']} | {r['k']} | {r['scope']} "
               f"| {r['peak_growth_bytes'] / 2**20:.1f} |"),
    (("epoch",), "| epoch | k | rule | minibatch | steps | dense (s) | meProp (s) | ratio | loss dense / meProp / "
                 "meProp without kernels |",
     lambda r: f"| {r['task']} | {r['k']} | {r.get('rule', 'topk')} | {r['batch_size']} | {r['steps']} "
               f"| {r['dense_s']:.2f} | {r['meprop_s']:.2f} "
               f"| {r['ratio']:.2f}x | {r['dense_loss']:.4f} / {r['meprop_loss']:.4f} / {r['meprop_pytorch_loss']:.4f} |"),
    (("decode",), "| parser | hidden | meSimp-sized | 500-wide (ms) | narrow (ms) | ratio |",
     lambda r: f"| {r['what']} | {r['wide']} | {r['narrow']} | {r['wide_ms']:.1f} | {r['narrow_ms']:.1f} "
               f"| {r['ratio']:.1f}x |"),
]


def format_tables(results: list[dict]) -> str:
    out: list[str] = []
    for groups, header, row in TABLES:
        rows = [row(r) for r in results if r["group"] in groups]
        if rows:
            columns = header.count("|") - 1
            out += ["", header, "|" + "---|" * columns, *rows]
    return "\n".join(out[1:])


def cpu_model() -> str:
    """The CPU's model name where the system says it (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated, of {', '.join(GROUPS)}")
    parser.add_argument("--quick", action="store_true", help="small shapes and few repeats: a smoke run")
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="auto: the GPU when torch sees one")
    parser.add_argument("--repeats", type=int, help="timed repetitions per layer shape (default 50; 5 quick)")
    parser.add_argument("--cases", help=f"the layer group's shapes only, comma-separated, of {', '.join(LINEAR_CASES)}")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    groups = [g for g in args.groups.split(",") if g]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        sys.exit(f"error: unknown benchmark group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    cases = [c for c in (args.cases or "").split(",") if c]
    unknown = sorted(set(cases) - set(LINEAR_CASES) - set(QUICK_CASES))
    if unknown:
        sys.exit(f"error: unknown layer case(s) {', '.join(unknown)}; known: {', '.join(LINEAR_CASES)}")
    try:
        device = resolve_device(args.device)
    except UserError as err:
        sys.exit(f"error: {err}")
    keep_freed_memory()  # as in training runs: both contenders reuse their large blocks
    flush_denormals()  # as in training runs
    try:
        results = run_groups(groups, args.quick, device, args.repeats, cases)
    except UserError as err:  # the epoch and decode groups read the real data
        sys.exit(f"error: {err}")
    print(format_tables(results))
    if args.json:
        write_json(args.json, {
            "machine": f"{platform.machine()} {platform.processor() or platform.system()}", "cpu": cpu_model(),
            "kernel_vector_paths": kernels.vector_paths(),
            "device": describe_device(device),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "code_version": code_version(),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "compiled_kernels": kernels.compiled() is not None, "quick": args.quick, "groups": groups,
            "results": results,
        })


if __name__ == "__main__":
    main()
