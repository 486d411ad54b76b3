"""Deterministic log, the AS 241 quantile and the scalar constants, against mpmath."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from initserve.core import special


def test_log_is_accurate_to_a_few_ulp() -> None:
    x = np.concatenate([np.geomspace(5e-324, 1.0, 20_000), np.linspace(0.01, 0.99, 2_000), [1e-300, 0.5, 0.75]])
    ours = special.log(x)
    exact = np.array([float(mpmath.log(mpmath.mpf(v))) for v in x])
    err = np.abs(ours - exact) / np.maximum(np.abs(exact), 1e-300)
    mask = exact != 0
    assert err[mask].max() < 4e-16


def test_ndtri_matches_the_exact_quantile() -> None:
    p = np.concatenate([np.linspace(1e-6, 1 - 1e-6, 4_001), np.geomspace(2.0**-53, 0.07, 500), [0.5, 0.075, 0.925]])
    ours = special.ndtri(p)
    with mpmath.workdps(40):
        exact = np.array([float(mpmath.sqrt(2) * mpmath.erfinv(2 * mpmath.mpf(v) - 1)) for v in p])
    rel = np.abs(ours - exact) / np.maximum(np.abs(exact), 1e-30)
    assert rel.max() < 1e-14


def test_ndtri_is_odd_on_symmetric_inputs() -> None:
    k = np.arange(0, 2**20, 977, dtype=np.float64)
    p = (2 * k + 1) * 2.0**-53
    assert np.array_equal(special.ndtri(p), -special.ndtri(1.0 - p))


def test_keras_truncation_constant_is_the_std_of_the_truncated_normal() -> None:
    _, variance = special.truncated_normal_moments(0.0, 1.0, -2.0, 2.0)
    assert math.sqrt(variance) == pytest.approx(special.TRUNCATED_NORMAL_STD_2, rel=1e-15)


@pytest.mark.parametrize("mean,std,low,high", [(0.0, 1.0, -2.0, 2.0), (1.0, 2.0, 0.0, 10.0), (0.0, 1.0, 3.0, 4.0)])
def test_truncated_moments_match_numerical_integration(mean: float, std: float, low: float, high: float) -> None:
    x = np.linspace(low, high, 400_001)
    density = np.exp(-0.5 * ((x - mean) / std) ** 2)
    weights = density / np.trapezoid(density, x)
    expect_mean = np.trapezoid(x * weights, x)
    expect_var = np.trapezoid((x - expect_mean) ** 2 * weights, x)
    got_mean, got_var = special.truncated_normal_moments(mean, std, low, high)
    assert got_mean == pytest.approx(expect_mean, rel=1e-8, abs=1e-10)
    assert got_var == pytest.approx(expect_var, rel=1e-7)


def test_normal_cdf_is_correctly_rounded() -> None:
    assert special.normal_cdf(0.0) == 0.5
    assert special.normal_cdf(-2.0) == pytest.approx(0.022750131948179195, rel=1e-16)
