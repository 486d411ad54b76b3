"""``python -m bench`` (``make bench``): time generation against torch and rewrite docs/benchmarks.md."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path
from types import ModuleType

from bench import generation, profiling, report

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "make bench"
FULL_COMMAND = "make bench ARGS=--full"


def _import_torch() -> ModuleType | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--full", "--orthogonal-4096", action="store_true", dest="full",
                        help="always time our orthogonal 4096², however long it is projected to take")
    parser.add_argument("--orthogonal-limit", type=float, default=generation.DEFAULT_ORTHOGONAL_LIMIT, metavar="S",
                        help="skip our orthogonal 4096² when projected above S seconds (default %(default)g)")
    parser.add_argument("--repeat", type=int, default=3, metavar="K",
                        help="runs per side and case; the best is reported (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run on small sizes (2^20 elements, orthogonal 128²/256²); writes no docs "
                             "unless --output is given")
    parser.add_argument("--output", type=Path, default=None,
                        help="markdown file to write (default docs/benchmarks.md; '-' to skip)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the report."""
    args = parse(argv)
    started, clock = dt.datetime.now(dt.UTC), time.perf_counter()
    torch = _import_torch()
    threads = os.cpu_count() or 1
    print(f"initserve bench: {threads} threads, torch {torch.__version__ if torch else 'NOT installed (no ratios)'}",
          flush=True)

    def log(line: str) -> None:
        print(line, flush=True)

    if args.quick:
        results = generation.run(torch, args.repeat, args.full, elements_log2=20, orthogonal_sizes=(128, 256),
                                 orthogonal_limit=args.orthogonal_limit, log=log)
    else:
        results = generation.run(torch, args.repeat, args.full, orthogonal_limit=args.orthogonal_limit, log=log)
    log("  profiling (cProfile, one thread) ...")
    profiles = profiling.collect(quick=args.quick)
    seconds = time.perf_counter() - clock

    machine = report.Machine.detect(torch.__version__ if torch else None)
    print()
    print(report.table(results, FULL_COMMAND))
    print()
    print(report.where_time_goes(profiles, results, machine.cores))
    output = args.output if args.output is not None else (None if args.quick else ROOT / "docs" / "benchmarks.md")
    if output is not None and str(output) != "-":
        text = report.markdown(results, profiles, machine, command=COMMAND, full_command=FULL_COMMAND,
                               started=started, seconds=seconds, torch_threads=threads if torch else None,
                               orthogonal_limit=args.orthogonal_limit)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(f"\nwrote {output} ({seconds:.0f} s)")
    if torch is None:
        print("torch was not importable: initserve's side only, no ratios", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
