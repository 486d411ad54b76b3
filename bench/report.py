"""The generation benchmark's section of docs/benchmarks.md and its console rendering; :class:`Machine`."""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from bench.generation import Result
from bench.profiling import Profile

INTRO = """\
Throughput of initserve's core generation (`initserve.core.resolve(...).region()`,
the full tensor in its storage dtype) against the matching `torch.nn.init` function
(`torch.empty` + the in-place initializer) measured in the same run, with torch set
to the same thread count as initserve's generation pool (`os.cpu_count()`). Both
sides allocate their output in every run. The two sides are interleaved run by run
and each keeps its best time, so that noise on a shared machine hits both. Ratios
are ours / torch throughput (for orthogonal: torch time / our time); above 1 means
initserve is faster. initserve's values are bit-reproducible across machines and
thread counts (see `docs/determinism.md`); torch's are not, which is part of what
the ratio pays for. This section is rewritten by every run of the generation benchmark."""

KNOWN_FUNCTIONS = {
    "initserve.core._kernel.fill_runs": "kernel",
    "method 'astype' of 'numpy.ndarray' objects": "astype",
    "initserve.core._linalg.reflect_block": "reflect_block",
}
"""Short names for the functions the summary usually meets (others are shown as cProfile names them)."""


@dataclass(frozen=True)
class Machine:
    """What the numbers were measured on."""

    cpu: str
    cores: int
    python: str
    numpy: str
    torch: str | None
    algorithm_version: str

    @classmethod
    def detect(cls, torch_version: str | None) -> Machine:
        """Read the CPU model from /proc/cpuinfo and the library versions."""
        import numpy

        from initserve.core import ALGORITHM_VERSION

        cpu = platform.processor() or "unknown"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return cls(cpu, os.cpu_count() or 1, platform.python_version(), numpy.__version__, torch_version,
                   ALGORITHM_VERSION)


def rate(value: float | None) -> str:
    """Elements/s with an SI prefix, or a dash."""
    if value is None:
        return "—"
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g} {prefix}"
    return f"{value:.3g}"


def _target(result: Result) -> str:
    if result.case.target is None:
        return "informational"
    return f"≥ {result.case.target:g}×"


def _status(result: Result) -> str:
    met = result.meets_target
    return "—" if met is None else ("met" if met else "**not met**")


def _best(times: list[float], every: bool) -> str:
    """The best time; with ``every``, each run's too (in the order run), to show the spread."""
    if not times:
        return "—"
    runs = f": {', '.join(f'{t:.3f}' for t in times)}" if every and len(times) > 1 else ""
    return f"{min(times):.3f} s (best of {len(times)}{runs})"


def table(results: list[Result], full_command: str) -> str:
    """The results as one markdown table (also readable as plain text)."""
    lines = ["| case | elements | ours el/s | torch el/s | ratio ours/torch | target | status | ours time | torch time |",
             "|---|---:|---:|---:|---:|---|---|---:|---:|"]
    for r in results:
        ours = (f"skipped ({r.skipped}; run `{full_command}`)" if r.skipped else rate(r.ours_rate))
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else "—"
        times = f"{_best(r.ours, r.case.dense)} | {_best(r.torch, r.case.dense)}"
        lines.append(f"| {r.case.label} | {r.case.elements:,} | {ours} | {rate(r.torch_rate)} | {ratio} | "
                     f"{_target(r)} | {_status(r)} | {times} |")
    return "\n".join(lines)


def _shares(profile: Profile) -> str:
    parts = [f"{share:.0%} in {KNOWN_FUNCTIONS.get(name, f'`{name}`')}" for name, share in profile.shares]
    return ", ".join(parts)


def where_time_goes(profiles: list[Profile], results: list[Result], threads: int) -> str:
    """One factual paragraph from the cProfile summaries and the measured rates."""
    by_label = {r.case.label: r for r in results}
    sentences = []
    for p in profiles:
        sentence = f"{p.label}: {_shares(p)} ({rate(p.rate)} el/s on one thread"
        parallel = by_label.get(p.label)
        if parallel is not None and parallel.ours_rate is not None and not parallel.case.dense:
            sentence += f", {rate(parallel.ours_rate)} with {threads} threads above"
        sentences.append(sentence + ")")
    return (
        "Own time per function under cProfile on one thread (elementwise methods in serial 2^16-element boxes "
        f"of a {profiles[0].elements:,}-element tensor; kernel = the compiled `_kernel.fill_runs`, Philox words to "
        "values rounded to the storage dtype, written straight into the output; reflect_block = the compiled "
        "`_linalg.reflect_block`, one block of Householder reflectors applied to Q): "
        + "; ".join(sentences) + ". "
        "Elementwise methods compute element i from Philox word i alone, in 2^16-element blocks spread over "
        "`os.cpu_count()` threads; the kernel has a baseline (SSE2) and an AVX2 build of the same IEEE "
        "operations (`INITSERVE_SIMD`). Inside the kernel (AVX2, normal float32, measured with perf on this "
        "machine on 2026-11-23): the central AS 241 formula, unit transform and tail compaction ~62%, Philox "
        "~17% visible (4.2 ns/word alone, at the multiplier's limit, interleaved with the polynomial), the "
        "tails ~17%, rounding and store ~4%. Orthogonal (algorithm_version 2) is Stewart's construction: the "
        "Householder reflectors of Gaussian vectors accumulated backwards in blocks of 96, about 4/3 n³ flops "
        "in double precision with every sum in index order, in a compiled product that vectorises across output "
        "columns only and splits them over threads, so its bits do not depend on the CPU or thread count "
        "(~11 GF/s per core here without FMA); torch's `orthogonal_` runs float32 LAPACK QR and forms Q "
        "(`torch.linalg.qr`, ~8/3 n³ flops). torch 2.13's `trunc_normal_` (default bounds "
        "[−2, 2]) draws `normal_` and redraws a full-size normal tensor for out-of-range entries until none remain."
    )


def markdown(results: list[Result], profiles: list[Profile], machine: Machine, *, command: str,
             full_command: str, started: dt.datetime, seconds: float, torch_threads: int | None,
             orthogonal_limit: float) -> str:
    """The generation section of docs/benchmarks.md (see :mod:`bench.sections`)."""
    square = next((r.case.shape for r in results if r.case.method == "xavier_uniform"), None)
    square_note = f"a {square[0]} × {square[1]} matrix" if square else "a square matrix"
    torch_line = (f"torch {machine.torch} (`torch.set_num_threads({torch_threads})`)" if machine.torch
                  else "torch **not installed**: initserve's side only, no ratios")
    return "\n".join([
        "## Generation throughput",
        "",
        INTRO,
        "",
        (f"- Command: `{command}` (our orthogonal 4096² runs only when projected at most {orthogonal_limit:g} s, "
         f"or with `{full_command}`)"),
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}; the run took {seconds:.0f} s",
        f"- Machine: {machine.cpu}, {machine.cores} logical cores (`os.cpu_count()`)",
        f"- Python {machine.python}, numpy {machine.numpy}, {torch_line}",
        f"- initserve algorithm_version {machine.algorithm_version}",
        "",
        table(results, full_command),
        "",
        ("Targets (issue 8): float32 normal, uniform, xavier/kaiming uniform and normal at least 1.0× torch's "
         "throughput, trunc_normal at least 5×, float64 at least 0.5×, orthogonal 4096² in at most torch's time "
         "(ratio ≥ 1); orthogonal 1024² is informational (whole-matrix cases list every run: their spread is this "
         "machine's noise). xavier/kaiming use "
         f"{square_note} (fans need 2-D); default parameters on both sides (seed 0, name \"\")."),
        "",
        "### Where the time goes",
        "",
        where_time_goes(profiles, results, machine.cores),
        "",
    ])
