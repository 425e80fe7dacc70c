"""Tables 7-8 (speed at large widths) from the benchmark's JSON files, ``<root>/bench/*.json``.

Each file is one ``python -m mesimp.bench --json PATH`` on one device: top level ``machine``, ``device``,
``threads``, ``torch``, and ``results``, each with ``group``, ``batch``, ``in_features``, ``out_features``,
``k``, ``scope``, ``dense_ms``, ``meprop_ms``, ``ratio`` and ``ideal``. A table takes the results of its group
at the paper's k values, at whatever sizes the device allowed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from mesimp.report.render import Rendered

BENCH_DIR = "bench"
FIELDS = ("batch", "in_features", "out_features", "k", "scope", "dense_ms", "meprop_ms", "ratio", "ideal")


@dataclass(frozen=True)
class BenchTable:
    name: str
    title: str
    source: str
    group: str  # the benchmark's result group this table reads
    paper_baseline: float  # the paper's dense time (ms)
    paper: Mapping[int, float]  # k -> the paper's meProp time (ms)
    notes: str = ""


BENCH_NOTES = ("The paper: a GTX 1080 GPU, batch 1024, h=8192. Ours: `python -m mesimp.bench` on this machine's CPU "
               "at the sizes it allows (and on a GPU where one was available: one file per device), the median "
               "of its repetitions; meProp and dense run side by side in one process. Speedup: dense / meProp; "
               "ideal: out / k.")

TABLE7 = BenchTable(
    "table7", "Table 7: Backprop time of one linear layer at large widths (synthetic data)", "paper.md §3.1 Table 7",
    group="layer", paper_baseline=308.00,
    paper={8: 8.37, 16: 9.16, 32: 11.20, 64: 14.38, 128: 21.28, 256: 38.57, 512: 69.95},
    notes=BENCH_NOTES)
TABLE8 = BenchTable(
    "table8", "Table 8: Overall backprop time of the MNIST MLP at large widths", "paper.md §3.1 Table 8",
    group="mlp", paper_baseline=17696.2,
    paper={8: 1501.5, 16: 1542.8, 32: 1656.9, 64: 1828.3, 128: 2200.0, 256: 3149.6, 512: 4874.1},
    notes=BENCH_NOTES + " The paper's times are per epoch of MNIST (MLP 784-8192-8192-10). This table reads the "
                        "benchmark's results of group 'mlp' (the whole MLP's backward at a large width, its "
                        "in_features the input, out_features the hidden width); compare the speedups.")
BENCH_TABLES = (TABLE7, TABLE8)


@dataclass(frozen=True)
class BenchFile:
    path: Path
    data: dict | None
    error: str = ""

    @property
    def device(self) -> str:
        return str((self.data or {}).get("device") or self.path.stem)


def load_bench_files(root: Path) -> list[BenchFile]:
    files = []
    for path in sorted((root / BENCH_DIR).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            if not isinstance(data.get("results"), list):
                raise ValueError("no 'results' list")
            files.append(BenchFile(path, data))
        except (OSError, ValueError, AttributeError) as err:
            files.append(BenchFile(path, None, f"unreadable: {err}"))
    return files


def results_of(table: BenchTable, bench: BenchFile) -> list[dict]:
    return [r for r in (bench.data or {}).get("results", [])
            if isinstance(r, dict) and r.get("group") == table.group and r.get("k") in table.paper
            and r.get("select", "topk") == "topk" and all(r.get(name) is not None for name in FIELDS)]


def render_bench(table: BenchTable, files: list[BenchFile], root: Path) -> Rendered:
    header = ["Device", "Batch", "In -> out", "Scope", "k", "Dense (ms)", "meProp (ms)", "Ideal",
              "Paper meProp (ms)"]
    rendered = Rendered(table.name, table.title, table.source, table.notes, header,
                        legend=f"The paper's dense baseline: {table.paper_baseline:,.2f} ms; in parentheses, speedups "
                               "over the dense backward.")
    if not files:
        rendered.missing.append(f"no benchmark results in {root / BENCH_DIR} (the reproduce command writes them with "
                                f"`python -m mesimp.bench --groups layer,mlp --json {root / BENCH_DIR / 'cpu.json'}`)")
    for bench in files:
        results = results_of(table, bench)
        if not results:
            why = bench.error or f"no complete results of group {table.group!r} at k in {sorted(table.paper)}"
            rendered.missing.append(f"`{bench.path.name}`: {why}")
        for r in sorted(results, key=lambda r: (r["batch"], r["in_features"], r["out_features"], r["scope"], r["k"])):
            paper = table.paper[r["k"]]
            paper_ratio = table.paper_baseline / paper
            rendered.rows.append([
                bench.device, str(r["batch"]), f"{r['in_features']} -> {r['out_features']}", str(r["scope"]),
                str(r["k"]), f"{r['dense_ms']:,.2f}", f"{r['meprop_ms']:,.2f} ({r['ratio']:.1f}x)",
                f"{r['ideal']:.0f}x", f"{paper:,.2f} ({paper_ratio:.1f}x)"])
            rendered.records.append({
                "table": table.name, "device": bench.device, "machine": bench.data.get("machine"),
                "threads": bench.data.get("threads"), "torch": bench.data.get("torch"), "batch": r["batch"],
                "in_features": r["in_features"], "out_features": r["out_features"], "scope": r["scope"],
                "k": r["k"], "dense_ms": r["dense_ms"], "meprop_ms": r["meprop_ms"], "ratio": r["ratio"],
                "ideal": r["ideal"], "paper_dense_ms": table.paper_baseline, "paper_meprop_ms": paper,
                "paper_ratio": paper_ratio})
    if not rendered.rows:
        rendered.rows.append([f"missing: {rendered.missing[0]}"] + [""] * (len(header) - 1))
    return rendered
