"""python -m mesimp.report [--root runs] [--out results/paper] [--fast] [--copy-runs] [[TASK:]KEY=VALUE ...]

Aggregate the runs under a sweep root into the paper's tables and figures. Give the same overrides (and
--fast) as the sweeps had, so the report looks for the runs they made. Bad input: one ``error:`` line, exit 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mesimp.errors import UserError
from mesimp.report.build import announce, build
from mesimp.report.plan import DEFAULT_OUT, DEFAULT_ROOT, FAST_OUT, FAST_ROOT, extras_from
from mesimp.train import fail


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mesimp.report", description=__doc__.splitlines()[2])
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE or TASK:KEY=VALUE, as given to the sweeps")
    parser.add_argument("--root", type=Path, help=f"the sweep root (default {DEFAULT_ROOT}; --fast: {FAST_ROOT})")
    parser.add_argument("--out", type=Path, help=f"where to write (default {DEFAULT_OUT}; --fast: {FAST_OUT})")
    parser.add_argument("--fast", action="store_true", help="the reduced grid of make reproduce-tables FAST=1")
    parser.add_argument("--copy-runs", action="store_true",
                        help="copy each finished run's metrics, config and log beside the tables (to publish them)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        root = args.root or (FAST_ROOT if args.fast else DEFAULT_ROOT)
        out = args.out or (FAST_OUT if args.fast else DEFAULT_OUT)
        summary = build(root, out, extras_from(args.overrides, fast=args.fast), copy_runs=args.copy_runs)
    except UserError as err:
        fail(str(err))
    announce(summary, out)


if __name__ == "__main__":
    main()
