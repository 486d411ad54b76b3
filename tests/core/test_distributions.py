"""Elementwise laws: the compiled kernel equals the numpy reference bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from initserve.core import stream
from initserve.core.distributions import Normal, TruncatedNormal, Uniform, half_open, open_unit
from initserve.core.plans import Sampled

LAWS = [
    Uniform(-0.5, 2.0),
    Uniform(0.0, 1.0),
    Normal(0.0, 1.0),
    Normal(-3.0, 0.02),
    TruncatedNormal(0.0, 1.0, -2.0, 2.0),
    TruncatedNormal(0.5, 2.0, 1.0, 9.0),  # mirrored: interval in the upper half
    TruncatedNormal(0.0, 1.0, -10.0, -9.0),  # far lower tail: p below 2**-53
    TruncatedNormal(0.0, 1.0, 9.0, 10.0),  # far upper tail
]


@pytest.mark.skipif(stream.kernel is None, reason="compiled kernel not built")
@pytest.mark.parametrize("law", LAWS, ids=repr)
@pytest.mark.parametrize("start,count", [(0, 1), (3, 513), (1_000_001, 70_001)])
def test_kernel_equals_numpy_reference(law: Uniform | Normal | TruncatedNormal, start: int, count: int) -> None:
    key = stream.derive_key(7, "layer.weight")
    reference = law.sample(stream.reference_words(key, start, count))
    assert np.array_equal(Sampled(law).values(key, np.array([start]), count), reference)


@pytest.mark.skipif(stream.kernel is None, reason="compiled kernel not built")
@pytest.mark.parametrize("law", LAWS, ids=repr)
@pytest.mark.parametrize("length", [1, 3, 511, 700])
def test_kernel_runs_equal_numpy_reference(law: Uniform | Normal | TruncatedNormal, length: int) -> None:
    """Many short runs (a box of a keras-layout tensor) give each run's reference values."""
    key = stream.derive_key(3, "conv.kernel")
    starts = np.array([0, 5, 4096 + 3, 10**9 + 1, 7, 5] * 50, dtype=np.int64)
    reference = np.concatenate([law.sample(stream.reference_words(key, int(s), length)) for s in starts])
    assert np.array_equal(Sampled(law).values(key, starts, length), reference)


def test_unit_numbers_are_exact_and_symmetric() -> None:
    w = np.array([0, 2**64 - 1, 2**63, 4095, 4096], dtype=np.uint64)
    assert half_open(w).tolist() == [0.0, 1 - 2.0**-52, 0.5, 0.0, 2.0**-52]
    p = open_unit(w)
    assert p.min() > 0.0 and p.max() < 1.0
    assert np.array_equal(1.0 - p, open_unit(~w))


@pytest.mark.parametrize("law", LAWS[4:], ids=repr)
def test_truncated_values_stay_inside_and_use_the_whole_interval(law: TruncatedNormal) -> None:
    values = law.sample(stream.reference_words((1, 2), 0, 200_000))
    assert values.min() >= law.low and values.max() <= law.high
    width = law.high - law.low
    assert values.min() < law.low + 0.05 * width and values.max() > law.high - 0.5 * width
    mean, variance = law.theory().mean, law.theory().variance
    assert abs(values.mean() - mean) < 5 * (variance / values.size) ** 0.5
