"""``python -m bench [generation|ranges|load|serving]`` (``make bench ARGS=…``): run the benchmarks, each rewriting
its section.

Without a name every benchmark runs. ``generation`` times core generation against
``torch.nn.init``; ``ranges`` times byte ranges of a 4 GiB virtual tensor against a
whole 1 MiB tensor on a live server; ``load`` drives a live multi-worker server with
concurrent clients and a seeded mix of requests (statuses, latency, peak RSS, health
after); ``serving`` downloads a 1 GiB tensor from a live server against generating it
in-process (and the server's peak RSS), and times small requests against a bare
FastAPI app. Each replaces only its own section of docs/benchmarks.md (see
:mod:`bench.sections`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time
from pathlib import Path
from types import ModuleType

from bench import generation, load, profiling, ranges, report, sections, serving

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "benchmarks.md"
BENCHMARKS = ("generation", "ranges", "load", "serving")
FULL_COMMAND = 'make bench ARGS="generation --full"'


def _import_torch() -> ModuleType | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


def log(line: str) -> None:
    print(line, flush=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", nargs="?", choices=("all", *BENCHMARKS), default="all",
                        help="which benchmark to run (default: all)")
    parser.add_argument("--full", "--orthogonal-4096", action="store_true", dest="full",
                        help="generation: always time our orthogonal 4096², however long it is projected to take")
    parser.add_argument("--orthogonal-limit", type=float, default=generation.DEFAULT_ORTHOGONAL_LIMIT, metavar="S",
                        help="generation: skip our orthogonal 4096² when projected above S seconds "
                             "(default %(default)g)")
    parser.add_argument("--repeat", type=int, default=3, metavar="K",
                        help="generation: runs per side and case; serving: rounds of 1 GiB downloads and in-process "
                             "generations per format; the best is reported (default 3)")
    parser.add_argument("--requests", type=int, default=None, metavar="N",
                        help="ranges: timed requests per case, after a warm-up (default 30; 5 with --quick)")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="load: seconds of load (default 60; 5 with --quick)")
    parser.add_argument("--clients", type=int, default=None, metavar="N",
                        help="load: concurrent clients (default 32; 8 with --quick)")
    parser.add_argument("--max-requests", type=int, default=None, metavar="N",
                        help="load: stop after N requests even before --duration (default 100000; 20000 with --quick)")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="load: worker processes of the server (default %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run on small sizes (generation: 2^20 elements, orthogonal 128²/256²; ranges: "
                             "64 KiB ranges of a 16 MiB tensor; load: 4–16 MiB streams, 8 clients for 5 s; "
                             "serving: a 16 MiB tensor, a few hundred small requests); "
                             "writes no docs unless --output is given")
    parser.add_argument("--output", type=Path, default=None,
                        help="markdown file whose sections to replace (default docs/benchmarks.md; '-' to skip)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.requests is None:
        args.requests = 5 if args.quick else 30
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    for name, full, quick in (("duration", 60.0, 5.0), ("clients", 32, 8), ("max_requests", 100_000, 20_000)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def command_line(argv: list[str]) -> str:
    """How this run was started, as ``make bench`` spells it (recorded in each section)."""
    if not argv:
        return "make bench"
    joined = shlex.join(argv)
    return f"make bench ARGS={joined}" if len(argv) == 1 else f'make bench ARGS="{joined}"'


def run_generation(args: argparse.Namespace, command: str) -> str:
    """Time generation against torch, print the table; return the generation section."""
    started, clock = dt.datetime.now(dt.UTC), time.perf_counter()
    torch = _import_torch()
    threads = os.cpu_count() or 1
    log(f"generation: {threads} threads, torch {torch.__version__ if torch else 'NOT installed (no ratios)'}")
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
    if torch is None:
        print("torch was not importable: initserve's side only, no ratios", file=sys.stderr)
    return report.markdown(results, profiles, machine, command=command, full_command=FULL_COMMAND,
                           started=started, seconds=seconds, torch_threads=threads if torch else None,
                           orthogonal_limit=args.orthogonal_limit)


def run_ranges(args: argparse.Namespace, command: str) -> str:
    """Time range requests on a live server, print the table; return the ranges section."""
    log("ranges: live server, byte ranges of a virtual tensor against a whole tensor")
    result = ranges.run(quick=args.quick, requests=args.requests, log=log)
    print()
    print(ranges.table(result))
    print()
    print(ranges.summary(result))
    return ranges.markdown(result, report.Machine.detect(None), command=command)


def run_load(args: argparse.Namespace, command: str) -> str:
    """Load a live server with concurrent clients, print the tables; return the load section."""
    options = load.Options(duration=args.duration, clients=args.clients, max_requests=args.max_requests,
                           workers=args.workers, quick=args.quick)
    log("load: live server, concurrent clients, a seeded mix of requests")
    result = load.run(options, log=log)
    print()
    print(load.table(result))
    print()
    print(load.summary(result))
    if result.unexpected_examples:
        print()
        print(load.examples(result))
    if result.health.first_traceback:
        print(f"\nfirst traceback in the server's output:\n{result.health.first_traceback}")
    return load.markdown(result, report.Machine.detect(None), command=command)


def run_serving(args: argparse.Namespace, command: str) -> str:
    """Download a large tensor and time small requests on a live server, print the tables; return the section."""
    log("serving: live server, a large download against in-process generation, small requests against FastAPI")
    result = serving.run(quick=args.quick, repeat=args.repeat, log=log)
    print()
    print(serving.large_table(result.large))
    print()
    print(serving.large_summary(result.large))
    print()
    print(serving.small_table(result.small))
    return serving.markdown(result, report.Machine.detect(None), command=command)


RUNNERS = {"generation": run_generation, "ranges": run_ranges, "load": run_load, "serving": run_serving}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks; replace each one's section of the report."""
    args = parse(argv)
    command = command_line(sys.argv[1:] if argv is None else argv)
    output = args.output if args.output is not None else (None if args.quick else DOCUMENT)
    for name in BENCHMARKS if args.benchmark == "all" else (args.benchmark,):
        section = RUNNERS[name](args, command)
        if output is not None and str(output) != "-":
            sections.write(output, name, section)
            log(f"\nreplaced section {name!r} of {output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
