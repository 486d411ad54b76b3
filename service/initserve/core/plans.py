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
_KERNEL_DTYPES = frozenset({"float32", "float64"})  # the compiled kernel's output types


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="initserve-gen")


def box_runs(shape: tuple[int, ...], box: Box) -> tuple[np.ndarray, int]:
    """The contiguous row-major runs of ``box``: their flat start indices, in order, and common length.

    Trailing dimensions the box spans completely are merged into the run.
    """
    ndim = len(shape)
    if any(stop <= start for start, stop in box):
        return np.empty(0, np.int64), 0
    if not ndim:
        return np.zeros(1, np.int64), 1
    run_dim = ndim - 1
    while run_dim > 0 and box[run_dim] == (0, shape[run_dim]):
        run_dim -= 1
    strides = [math.prod(shape[d + 1 :]) for d in range(ndim)]
    length = (box[run_dim][1] - box[run_dim][0]) * strides[run_dim]
    starts = np.array([box[run_dim][0] * strides[run_dim]], np.int64)
    for d in reversed(range(run_dim)):
        starts = (np.arange(*box[d], dtype=np.int64)[:, None] * strides[d] + starts[None, :]).ravel()
    return starts, length


def _jobs(starts: np.ndarray, length: int) -> Iterator[tuple[np.ndarray, int, int]]:
    """Units of work of about :data:`BLOCK` elements: ``(run starts, run length, output offset)``.

    Long runs are cut into pieces; short runs are grouped.
    """
    if length >= BLOCK:
        for r, start in enumerate(starts.tolist()):
            for done in range(0, length, BLOCK):
                yield np.array([start + done], np.int64), min(BLOCK, length - done), r * length + done
    elif length:
        per_job = BLOCK // length
        for r in range(0, len(starts), per_job):
            yield starts[r : r + per_job], length, r * length


class Pointwise:
    """A plan whose element ``i`` depends only on ``i`` (and word ``W[0, i]``)."""

    def values(self, key: Key, starts: np.ndarray, length: int) -> np.ndarray:
        """Doubles of the runs ``[s, s + length)`` for each ``s`` of ``starts``, concatenated."""
        raise NotImplementedError

    def fill(self, key: Key, starts: np.ndarray, length: int, out: np.ndarray, dtype: str) -> None:
        """:meth:`values` rounded to ``dtype``, into ``out`` (contiguous, of ``dtype``'s storage)."""
        out[...] = round_to(self.values(key, starts, length), dtype)

    def region(self, key: Key, shape: tuple[int, ...], box: Box, dtype: str) -> np.ndarray:
        """Values of ``box`` of the canonical ``shape``, rounded to ``dtype`` block by block."""
        box_shape = tuple(stop - start for start, stop in box)
        out = np.empty(math.prod(box_shape), STORAGE[dtype])
        starts, length = box_runs(shape, box)

        def fill(job: tuple[np.ndarray, int, int]) -> None:
            runs, run_length, offset = job
            self.fill(key, runs, run_length, out[offset : offset + len(runs) * run_length], dtype)

        jobs = list(_jobs(starts, length))
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

    def values(self, key: Key, starts: np.ndarray, length: int) -> np.ndarray:
        if stream.kernel is None:
            words = [stream.words(key, start, length) for start in starts.tolist()]
            return self.distribution.sample(np.concatenate(words) if words else np.empty(0, np.uint64))
        out = np.empty(len(starts) * length)
        self.fill(key, starts, length, out, "float64")
        return out

    def fill(self, key: Key, starts: np.ndarray, length: int, out: np.ndarray, dtype: str) -> None:
        if stream.kernel is None or dtype not in _KERNEL_DTYPES:
            super().fill(key, starts, length, out, dtype)
            return
        kind, params = self.distribution.kernel_args()  # the kernel rounds to float32 itself, as round_to does
        stream.kernel.fill_runs(out, kind, key[0], key[1], starts.astype(np.uint64), length, params)

    def theory(self) -> Theory:
        return self.distribution.theory()

    def largest(self) -> float:
        return self.distribution.largest()


@dataclass(frozen=True)
class Pattern(Pointwise):
    """Element ``i`` = ``function(i)`` for flat canonical indices ``i`` (no randomness)."""

    function: Callable[[np.ndarray], np.ndarray]
    summary: Theory

    def values(self, key: Key, starts: np.ndarray, length: int) -> np.ndarray:
        return self.function((starts[:, None] + np.arange(length, dtype=np.int64)).ravel())

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
