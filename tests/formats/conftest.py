"""Fixtures for the encoder tests: a fake lazy tensor backed by a numpy array."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from initserve.formats import EncodedBody

STORAGE = {"float32": "<f4", "float64": "<f8", "float16": "<f2", "bfloat16": "<u2", "int64": "<i8"}


@dataclass
class FakeSource:
    """A TensorSource over an in-memory array, served in chunks of ``chunk`` elements.

    ``calls`` records every ``iter_flat`` range so tests can check what was generated.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    values: np.ndarray  # flat, storage dtype
    metadata: dict[str, str] = field(default_factory=dict)
    chunk: int = 7
    calls: list[tuple[int, int]] = field(default_factory=list)

    def iter_flat(self, start: int, stop: int) -> Iterator[np.ndarray]:
        self.calls.append((start, stop))
        for begin in range(start, stop, self.chunk):
            yield self.values[begin : min(begin + self.chunk, stop)].copy()


def bfloat16_bits(array: np.ndarray) -> np.ndarray:
    """Round-toward-zero bfloat16 bit patterns of a float32 array (the top 16 bits)."""
    return (np.asarray(array, dtype="<f4").view("<u4") >> 16).astype("<u2")


def random_values(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Random finite values of ``shape`` in storage dtype (bfloat16 as bit patterns, int64 over its whole range)."""
    rng = np.random.default_rng(seed)
    if dtype == "int64":
        return rng.integers(-(2**63), 2**63, shape, dtype=np.int64).astype("<i8")
    spread = 10 if dtype == "float16" else 20  # float16 overflows past 65504
    floats = rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread, shape))
    if dtype == "bfloat16":
        return bfloat16_bits(floats.astype("<f4"))
    array = floats.astype(STORAGE[dtype])
    assert np.isfinite(array).all()
    return array


MakeSource = Callable[..., FakeSource]


@pytest.fixture
def make_source() -> MakeSource:
    """Factory: ``make_source(array, dtype=..., name=..., chunk=..., metadata=...)``."""

    def make(
        array: np.ndarray,
        dtype: str | None = None,
        name: str = "w",
        chunk: int = 7,
        metadata: dict[str, str] | None = None,
    ) -> FakeSource:
        dtype = dtype or {"<f4": "float32", "<f8": "float64", "<f2": "float16", "<i8": "int64"}[array.dtype.str]
        assert array.dtype == np.dtype(STORAGE[dtype])
        return FakeSource(name, tuple(array.shape), dtype, array.reshape(-1), dict(metadata or {}), chunk)

    return make


@pytest.fixture
def collect() -> Callable[[EncodedBody], bytes]:
    """Join a body's chunks, checking that ``length`` is exact."""

    def join(body: EncodedBody) -> bytes:
        data = b"".join(body.chunks)
        assert body.length == len(data)
        return data

    return join


@pytest.fixture(params=[(3, 4), (17,), (2, 3, 5), (), (0,), (4, 0, 3)], ids=str)
def shape(request: pytest.FixtureRequest) -> tuple[int, ...]:
    """Shapes every encoder must handle: 1-D to 3-D, 0-D (one element) and zero-size."""
    value: tuple[int, ...] = request.param
    return value


@pytest.fixture
def values() -> Callable[..., np.ndarray]:
    """Factory: ``values(shape, dtype, seed=0)``, random finite values in storage dtype."""
    return random_values


@pytest.fixture
def to_bfloat16() -> Callable[[np.ndarray], np.ndarray]:
    """Factory: bfloat16 bit patterns (truncated) of a float32 array."""
    return bfloat16_bits
