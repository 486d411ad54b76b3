"""Gains: PyTorch's table exactly, and second-moment gains for the others."""

from __future__ import annotations

import math

import numpy as np
import pytest

from initserve.core import NONLINEARITIES, SpecError, calculate_gain

TORCH_TABLE = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
               "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


def test_torch_table_values() -> None:
    assert calculate_gain("tanh") == 5.0 / 3
    assert calculate_gain("relu") == math.sqrt(2.0)
    assert calculate_gain("selu") == 0.75
    assert calculate_gain("leaky_relu") == math.sqrt(2.0 / (1 + 0.01**2))
    assert calculate_gain("leaky_relu", 0.2) == math.sqrt(2.0 / 1.04)


@pytest.mark.parametrize("name", TORCH_TABLE)
@pytest.mark.parametrize("slope", [None, 0.0, 0.2, 5**0.5])
def test_equal_to_torch(name: str, slope: float | None) -> None:
    torch = pytest.importorskip("torch")
    assert calculate_gain(name, slope) == torch.nn.init.calculate_gain(name, slope)


def _activation(name: str, x: np.ndarray) -> np.ndarray:
    from math import erf

    if name == "gelu":
        return x * 0.5 * (1 + np.vectorize(erf)(x / math.sqrt(2)))
    if name == "silu":
        return x / (1 + np.exp(-x))
    if name == "elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    if name == "softplus":
        return np.logaddexp(0, x)
    return x * np.tanh(np.logaddexp(0, x))  # mish


@pytest.mark.parametrize("name", ["gelu", "silu", "elu", "softplus", "mish"])
def test_second_moment_gains_match_quadrature(name: str) -> None:
    x = np.linspace(-12, 12, 200_001)
    density = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    moment = np.trapezoid(_activation(name, x) ** 2 * density, x)
    assert calculate_gain(name) == pytest.approx(1 / math.sqrt(moment), rel=1e-9)


def test_second_moment_rule_reproduces_relu() -> None:
    x = np.linspace(-12, 12, 200_001)
    density = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    assert 1 / math.sqrt(np.trapezoid(np.maximum(x, 0) ** 2 * density, x)) == pytest.approx(calculate_gain("relu"))


def test_swish_is_silu_and_unknown_is_an_error() -> None:
    assert "swish" in NONLINEARITIES
    assert calculate_gain("swish") == calculate_gain("silu")
    with pytest.raises(SpecError) as info:
        calculate_gain("relu6")
    assert info.value.field == "nonlinearity" and info.value.value == "relu6"
