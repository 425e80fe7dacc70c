"""Print a Markdown table of finished runs: python scripts/summarize_runs.py RUN_DIR [RUN_DIR ...]

Reads each run's metrics.json; a run without one shows as unfinished. (The paper's tables, with the paper's
numbers beside ours, are issue #6's aggregator; this is the quick look.)
"""

import json
import sys
from pathlib import Path

COLUMNS = ["best_dev", "test_at_best_dev", "test_las", "final_test", "best_dev_epoch", "backprop_time_s",
           "update_ratio", "hidden_dims", "compression", "decode_sents_per_s"]


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def main(run_dirs: list[str]) -> None:
    print("| run | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for run in map(Path, run_dirs):
        path = run / "metrics.json"
        if not path.exists():
            print(f"| {run.name} | unfinished" + " |" * len(COLUMNS))
            continue
        metrics = json.loads(path.read_text())
        print(f"| {run.name} | " + " | ".join(cell(metrics.get(c)) for c in COLUMNS) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
