"""Where the time goes: single-threaded cProfile of our generation, summarised as text.

cProfile sees only the calling thread, so elementwise methods are profiled over
boxes of 2^16 elements (below the core's parallel threshold, hence generated on
the calling thread). The summary names the functions with the most own time.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from initserve.core import resolve

BOX = 1 << 16
"""Elements per region() call when profiling elementwise methods (generated serially)."""


@dataclass(frozen=True)
class Profile:
    """Own-time shares of the top functions for one workload, plus its serial rate."""

    label: str
    elements: int
    seconds: float  # unprofiled wall time of the workload
    shares: list[tuple[str, float]]  # (function, fraction of profiled total)

    @property
    def rate(self) -> float:
        """Elements per second without the profiler."""
        return self.elements / self.seconds


def _function_label(key: tuple[str, int, str]) -> str:
    filename, _line, name = key
    if filename == "~":  # a builtin: pstats names it like "<built-in method ...>" or "<method 'x' of 'y' objects>"
        return name.strip("<>{}").replace("built-in method ", "")
    return f"{filename.rsplit('/', 1)[-1]}:{name}"


def profile(label: str, elements: int, workload: Callable[[], Any], top: int = 3) -> Profile:
    """Time ``workload`` once plainly, once under cProfile; keep the ``top`` own-time shares."""
    workload()  # warm caches, imports, compiled kernel
    start = time.perf_counter()
    workload()
    seconds = time.perf_counter() - start
    profiler = cProfile.Profile()
    profiler.runcall(workload)
    stats = pstats.Stats(profiler)
    entries: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values()) or 1.0
    own = [(key, entry) for key, entry in entries.items() if not key[0].endswith("profiling.py")]  # not the harness
    ranked = sorted(own, key=lambda item: item[1][2], reverse=True)[:top]
    return Profile(label, elements, seconds, [(_function_label(key), entry[2] / total) for key, entry in ranked])


def elementwise(method: str, dtype: str = "float32", elements: int = 1 << 22) -> Profile:
    """Profile ``method`` generating ``elements`` values in serial boxes of :data:`BOX`."""
    tensor = resolve(method, [elements], dtype=dtype)
    boxes = [((start, min(start + BOX, elements)),) for start in range(0, elements, BOX)]

    def workload() -> None:
        for box in boxes:
            tensor.region(box)

    return profile(f"{method} {dtype}", elements, workload)


def orthogonal(n: int = 512) -> Profile:
    """Profile the whole-matrix orthogonal construction at n × n."""
    return profile(f"orthogonal {n}²", n * n, lambda: resolve("orthogonal", [n, n]).region())


def collect(quick: bool = False) -> list[Profile]:
    """The profiles the report summarises (smaller workloads when ``quick``)."""
    size = 1 << (18 if quick else 22)
    return [elementwise("normal", elements=size), elementwise("uniform", elements=size),
            elementwise("trunc_normal", elements=size), orthogonal(128 if quick else 512)]
