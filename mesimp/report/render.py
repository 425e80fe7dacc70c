"""Tables as Markdown (ours beside the paper's, as the paper prints them) and as CSV (one number a line)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mesimp.report.aggregate import Line, Stat
from mesimp.report.spec import Kind, Metric, Table

MISSING = "missing"
LEGEND = ("Ours: mean ± standard deviation over the finished runs (seeds); in parentheses, as the paper prints "
          "them, the comparison with the row's baseline (difference, speedup, or share). Δ: ours minus the paper's. "
          "Runs: finished / expected, and why the others have no numbers.")


@dataclass
class Rendered:
    """A table ready to write: its Markdown cells, and the same numbers as CSV records."""

    name: str
    title: str
    source: str
    notes: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # one line per run without numbers: where, and why
    legend: str = LEGEND


def compare(kind: Kind, value: float, baseline: float) -> Optional[float]:
    """The paper's parenthesised numbers: a difference, a speedup or a share of the baseline."""
    if kind is Kind.accuracy:
        return value - baseline
    if kind is Kind.time:
        return baseline / value if value else None
    if kind is Kind.size:
        return 100.0 * value / baseline if baseline else None
    return None


def format_compare(kind: Kind, number: Optional[float]) -> str:
    if number is None:
        return ""
    return {Kind.accuracy: f"{number:+.2f}", Kind.time: f"{number:.1f}x", Kind.size: f"{number:.1f}%"}[kind]


def _number(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def _with_compare(text: str, kind: Kind, number: Optional[float]) -> str:
    note = format_compare(kind, number)
    return f"{text} ({note})" if note else text


def render_table(table: Table, table_lines: list[Line]) -> Rendered:
    # a metric the paper does not report (the final meSimp model's score) gets no paper or Δ column
    in_paper = {m.key: any(m.key in row.paper for row in table.rows) for m in table.metrics}
    header = ["Task", "Model", "Data", "Runs"]
    for metric in table.metrics:
        header.append(metric.title)
        if in_paper[metric.key]:
            header += [f"{metric.title} (paper)"] + (["Δ"] if metric.kind is Kind.accuracy else [])
    rendered = Rendered(table.name, table.title, table.source, table.notes, header)
    for line in table_lines:
        base = _baseline_line(line, table_lines)
        cells = [line.row.group, line.row.label, line.setting, _runs_cell(line)]
        for metric in table.metrics:
            metric_cells = _metric_cells(line, base, metric, rendered)
            cells += metric_cells if in_paper[metric.key] else metric_cells[:1]
        rendered.rows.append(cells)
        rendered.missing += [f"`{r.job.task}/{r.job.name}` ({line.row.group}, {line.row.label}): {r.reason}"
                             for r in line.missing]
    return rendered


def _metric_cells(line: Line, base: Optional[Line], metric: Metric, rendered: Rendered) -> list[str]:
    ours = line.stat(metric)
    base_stat = base.stat(metric) if base else None
    paper = line.row.paper.get(metric.key)
    paper_vs = line.row.paper_vs.get(metric.key)
    ours_vs = compare(metric.kind, ours.mean, base_stat.mean) if ours and base_stat else None
    delta = ours.mean - paper if ours and paper is not None and metric.kind is Kind.accuracy else None
    rendered.records.append({
        "table": rendered.name, "task": line.row.group, "model": line.row.label, "data": line.setting,
        "metric": metric.key, "ours_mean": ours.mean if ours else None, "ours_std": ours.std if ours else None,
        "runs": ours.n if ours else 0, "runs_expected": len(line.records), "ours_vs_baseline": ours_vs,
        "paper": paper, "paper_vs_baseline": paper_vs, "delta": delta,
        "missing": "; ".join(sorted({r.reason for r in line.missing})),
    })
    cells = [_with_compare(_stat_text(ours, metric), metric.kind, ours_vs) if ours else MISSING,
             _with_compare(_printed(paper, metric.digits), metric.kind, paper_vs) if paper is not None else "-"]
    if metric.kind is Kind.accuracy:
        cells.append(f"{delta:+.2f}" if delta is not None else "-")
    return cells


def _printed(value: float, digits: int) -> str:
    """The paper's number as printed: whole numbers (epochs, rounded times) without decimals."""
    return f"{value:,}" if isinstance(value, int) else _number(value, digits)


def _stat_text(stat: Stat, metric: Metric) -> str:
    text = _number(stat.mean, metric.digits)
    return f"{text} ± {_number(stat.std, metric.digits)}" if stat.std is not None else text


def _baseline_line(line: Line, table_lines: list[Line]) -> Optional[Line]:
    if line.row.baseline is None:
        return None
    return next((other for other in table_lines if other.row.group == line.row.group
                 and other.row.label == line.row.baseline and other.setting == line.setting), None)


def _runs_cell(line: Line) -> str:
    text = f"{line.finished}/{len(line.records)}"
    by_reason: dict[str, list[str]] = {}
    for record in line.missing:
        by_reason.setdefault(record.reason, []).append(record.job.values.get("seed", ""))
    details = [f"{reason}" + (f" (seed {', '.join(seeds)})" if all(seeds) and len(line.records) > 1 else "")
               for reason, seeds in by_reason.items()]
    return f"{text}: {'; '.join(details)}" if details else text


def write(rendered: Rendered, out: Path) -> list[Path]:
    md, table_csv = out / f"{rendered.name}.md", out / f"{rendered.name}.csv"
    md.write_text(markdown(rendered))
    write_csv(table_csv, rendered.records)
    return [md, table_csv]


def markdown(rendered: Rendered) -> str:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    parts = [f"# {rendered.title}", "", f"The paper's numbers: {rendered.source}. {rendered.legend}", "",
             row(rendered.header), "|" + "---|" * len(rendered.header), *map(row, rendered.rows), ""]
    if rendered.notes:
        parts += [f"Notes: {rendered.notes}", ""]
    if rendered.missing:
        parts += ["Runs without numbers (directories under the sweep root):", "",
                  *[f"- {line}" for line in rendered.missing], ""]
    return "\n".join(parts)


def write_csv(path: Path, records: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        if not records:
            return
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
