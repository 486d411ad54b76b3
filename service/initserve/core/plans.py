"""How the values of a tensor are produced, region by region.

A *plan* fills any box (per-dimension ``[start, stop)``) of the canonical
tensor with doubles. Three kinds:

* :class:`Sampled` — element ``i`` is ``distribution.sample(W[0, i])`` (computed
  by the compiled kernel when it is built; the numpy ``sample`` is the reference);
* :class:`Pattern` — element ``i`` is a function of its index alone (constant,
  eye, dirac);
* :class:`Dense` — the whole tensor must be built first (orthogonal, sparse,
  delta-orthogonal); a box is a slice of it.

The first two only ever compute what the box covers, in fixed blocks that may
run on several threads: the result does not depend on the block split.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np

from initserve.core import stream
from initserve.core.distributions import Distribution, Theory
from initserve.core.dtypes import STORAGE, round_to

Box = tuple[tuple[int, int], ...]
Key = tuple[int, int]

BLOCK = 1 << 16  # elements per unit of work (the kernel works in cache-sized tiles inside)
_PARALLEL_MIN = 1 << 17  # below this, threads cost more than they save


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="initserve-gen")


def box_runs(shape: tuple[int, ...], box: Box) -> Iterator[tuple[int, int, int]]:
    """Contiguous row-major runs of ``box``: ``(flat_start, length, offset_in_box)``.

    Trailing dimensions the box spans completely are merged into one run.
    """
    ndim = len(shape)
    merged = ndim
    while merged > 1 and box[merged - 1] == (0, shape[merged - 1]):
        merged -= 1
    run_dim = merged - 1 if ndim else 0
    inner = math.prod(shape[run_dim + 1 :]) if ndim else 1
    length = (box[run_dim][1] - box[run_dim][0]) * inner if ndim else 1
    if length == 0 or any(stop <= start for start, stop in box):
        return
    strides = [math.prod(shape[d + 1 :]) for d in range(ndim)]
    outer = [range(start, stop) for start, stop in box[:run_dim]]
    offset = 0
    for index in np.ndindex(*[len(r) for r in outer]) if outer else [()]:
        flat = sum((outer[d][i]) * strides[d] for d, i in enumerate(index))
        if ndim:
            flat += box[run_dim][0] * strides[run_dim]
        yield flat, length, offset
        offset += length


class Pointwise:
    """A plan whose element ``i`` depends only on ``i`` (and word ``W[0, i]``)."""

    def values(self, key: Key, start: int, count: int) -> np.ndarray:
        raise NotImplementedError

    def region(self, key: Key, shape: tuple[int, ...], box: Box, dtype: str) -> np.ndarray:
        """Values of ``box`` of the canonical ``shape``, rounded to ``dtype`` block by block."""
        box_shape = tuple(stop - start for start, stop in box)
        out = np.empty(math.prod(box_shape), STORAGE[dtype])
        jobs = [
            (flat + done, min(BLOCK, length - done), offset + done)
            for flat, length, offset in box_runs(shape, box)
            for done in range(0, length, BLOCK)
        ]

        def fill(job: tuple[int, int, int]) -> None:
            flat, count, offset = job
            out[offset : offset + count] = round_to(self.values(key, flat, count), dtype)

        if out.size >= _PARALLEL_MIN and len(jobs) > 1:
            list(_executor().map(fill, jobs))
        else:
            for job in jobs:
                fill(job)
        return out.reshape(box_shape)


@dataclass(frozen=True)
class Sampled(Pointwise):
    """Element ``i`` = ``distribution.sample(W[0, i])``."""

    distribution: Distribution

    def values(self, key: Key, start: int, count: int) -> np.ndarray:
        if stream.kernel is None:
            return self.distribution.sample(stream.words(key, start, count))
        out = np.empty(count)
        kind, params = self.distribution.kernel_args()
        stream.kernel.fill(out, kind, key[0], key[1], start, params)
        return out

    def theory(self) -> Theory:
        return self.distribution.theory()

    def largest(self) -> float:
        return self.distribution.largest()


@dataclass(frozen=True)
class Pattern(Pointwise):
    """Element ``i`` = ``function(i)`` for flat canonical indices ``i`` (no randomness)."""

    function: Callable[[np.ndarray], np.ndarray]
    summary: Theory

    def values(self, key: Key, start: int, count: int) -> np.ndarray:
        return self.function(np.arange(start, start + count, dtype=np.int64))

    def theory(self) -> Theory:
        return self.summary

    def largest(self) -> float:
        return max(abs(self.summary.low), abs(self.summary.high))


@dataclass(frozen=True)
class Dense:
    """The whole canonical tensor is built (once per :class:`Tensor`) by ``build(key)``; a box is a slice of it."""

    build: Callable[[Key], np.ndarray]
    summary: Theory
    matrix: tuple[int, int]  # rows × cols of the matrix the construction works on (for size limits)
    bound: float  # largest magnitude a value can take

    def largest(self) -> float:
        return self.bound

    def theory(self) -> Theory:
        return self.summary


Plan = Sampled | Pattern | Dense
