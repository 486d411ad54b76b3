"""The generation cases: initserve's core against ``torch.nn.init``, timed in one run.

Each case times ``resolve(...).region()`` (a fresh tensor, fully generated) and the
matching torch call (``torch.empty`` + the in-place ``torch.nn.init`` function), so
both sides pay for allocating their output. Runs alternate between the two sides
(ours first on even rounds, torch first on odd ones) so that noise on a shared
machine hits both, and the best time of each side is kept.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from initserve.core import resolve

ELEMENTWISE_LOG2 = 26
"""Elementwise cases generate 2^26 elements (256 MiB as float32)."""

SLOW_RUN_SECONDS = 60.0
"""A side whose single run is expected to take longer than this is timed once."""

DEFAULT_ORTHOGONAL_LIMIT = 600.0
"""Projected seconds above which ``orthogonal 4096²`` is skipped unless ``--full`` (keeps a default run ≲ 5 min)."""


@dataclass(frozen=True)
class Case:
    """One benchmark: an initserve spec and the ``torch.nn.init`` call it is compared with."""

    label: str
    method: str
    shape: tuple[int, ...]
    dtype: str
    torch_call: Callable[[ModuleType], Any]
    target: float | None = None  # ratio ours/torch to reach (>=); None = informational
    dense: bool = False  # whole-matrix method (orthogonal): throughput ratio = time ratio torch/ours

    @property
    def elements(self) -> int:
        """Number of generated elements."""
        return math.prod(self.shape)

    def ours(self) -> Any:
        """Generate the full tensor with initserve's core."""
        return resolve(self.method, list(self.shape), dtype=self.dtype).region()


@dataclass
class Result:
    """Timings of one case (seconds per run, each side)."""

    case: Case
    ours: list[float] = field(default_factory=list)
    torch: list[float] = field(default_factory=list)
    skipped: str | None = None  # why our side did not run

    @property
    def ours_rate(self) -> float | None:
        """Best elements/s of initserve, or None when not run."""
        return self.case.elements / min(self.ours) if self.ours else None

    @property
    def torch_rate(self) -> float | None:
        """Best elements/s of torch, or None when not run."""
        return self.case.elements / min(self.torch) if self.torch else None

    @property
    def ratio(self) -> float | None:
        """ours / torch throughput (= torch time / our time), or None."""
        if self.ours_rate is None or self.torch_rate is None:
            return None
        return self.ours_rate / self.torch_rate

    @property
    def meets_target(self) -> bool | None:
        """Whether the ratio reaches the target; None when informational or unmeasured."""
        if self.case.target is None or self.ratio is None:
            return None
        return self.ratio >= self.case.target


def _torch_elementwise(name: str, shape: tuple[int, ...], dtype: str) -> Callable[[ModuleType], Any]:
    def call(torch: ModuleType) -> Any:
        tensor = torch.empty(*shape, dtype=getattr(torch, dtype))
        return getattr(torch.nn.init, name)(tensor)

    return call


def cases(elements_log2: int = ELEMENTWISE_LOG2, orthogonal_sizes: tuple[int, int] = (1024, 4096)) -> list[Case]:
    """All cases; the second orthogonal size is the expensive one (see :func:`run`)."""
    flat = (1 << elements_log2,)
    square = (1 << (elements_log2 // 2), 1 << (elements_log2 - elements_log2 // 2))
    elementwise = [  # (label, method, shape, dtype, target ratio ours/torch; issue 8)
        ("normal float32", "normal", flat, "float32", 1.0),
        ("uniform float32", "uniform", flat, "float32", 1.0),
        ("trunc_normal float32", "trunc_normal", flat, "float32", 5.0),
        ("normal float64", "normal", flat, "float64", 0.5),
        ("xavier_uniform float32", "xavier_uniform", square, "float32", 1.0),
        ("xavier_normal float32", "xavier_normal", square, "float32", 1.0),
        ("kaiming_uniform float32", "kaiming_uniform", square, "float32", 1.0),
        ("kaiming_normal float32", "kaiming_normal", square, "float32", 1.0),
    ]
    result = [Case(label, method, shape, dtype, _torch_elementwise(method + "_", shape, dtype), target)
              for label, method, shape, dtype, target in elementwise]
    for n, target in zip(orthogonal_sizes, (None, 1.0), strict=True):  # the large one: at most torch's time
        result.append(Case(f"orthogonal {n}²", "orthogonal", (n, n), "float32",
                           _torch_elementwise("orthogonal_", (n, n), "float32"), target, dense=True))
    return result


def _time(call: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    value = call()
    elapsed = time.perf_counter() - start
    del value
    return elapsed


def measure(case: Case, torch: ModuleType | None, repeat: int, run_ours: bool = True,
            log: Callable[[str], None] = print) -> Result:
    """Time ``case`` ``repeat`` times per side, interleaving the sides."""
    result = Result(case)
    for round_ in range(repeat):
        sides: list[tuple[str, list[float], Callable[[], Any]]] = []
        if run_ours:
            sides.append(("ours", result.ours, case.ours))
        if torch is not None:
            sides.append(("torch", result.torch, lambda: case.torch_call(torch)))
        if round_ % 2:
            sides.reverse()
        for side, times, call in sides:
            times.append(_time(call))
            log(f"  {case.label:<24} {side:<5} run {round_ + 1}/{repeat}: {times[-1]:8.3f} s")
    return result


def run(torch: ModuleType | None, repeat: int, full: bool, *, elements_log2: int = ELEMENTWISE_LOG2,
        orthogonal_sizes: tuple[int, int] = (1024, 4096), orthogonal_limit: float = DEFAULT_ORTHOGONAL_LIMIT,
        log: Callable[[str], None] = print) -> list[Result]:
    """Run every case; the large orthogonal one only if projected under ``orthogonal_limit`` or ``full``.

    The projection scales the best 1024² time by (n / 1024)³ (the construction is O(n³)).
    Slow sides (projected above :data:`SLOW_RUN_SECONDS` per run) are timed once.
    """
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
    all_cases = cases(elements_log2, orthogonal_sizes)
    *quick, large = all_cases
    results = [measure(case, torch, repeat, log=log) for case in quick]
    small_ortho = results[-1]
    projected = min(small_ortho.ours) * (large.shape[0] / small_ortho.case.shape[0]) ** 3
    torch_projected = (min(small_ortho.torch) * (large.shape[0] / small_ortho.case.shape[0]) ** 3
                       if small_ortho.torch else 0.0)
    run_ours = full or projected <= orthogonal_limit
    slow = projected > SLOW_RUN_SECONDS or torch_projected > SLOW_RUN_SECONDS
    shown = f"{projected:,.0f}" if projected >= 10 else f"{projected:.2g}"
    log(f"  {large.label}: ours projected {shown} s -> {'running' if run_ours else 'skipped'}")
    big = measure(large, torch, 1 if slow or not run_ours else repeat, run_ours=run_ours, log=log)
    if not run_ours:
        big.skipped = f"projected {shown} s"
    results.append(big)
    return results
