"""Recommended gains for nonlinearities.

The PyTorch table (``torch.nn.init.calculate_gain``), exactly:

=================================  ====================================
linear, conv*, conv_transpose*     1
sigmoid                            1
tanh                               5/3
relu                               sqrt(2)
leaky_relu                         sqrt(2 / (1 + negative_slope²)), slope 0.01 by default
selu                               3/4
=================================  ====================================

For activations that table lacks, the gain is the one that keeps the second
moment of the signal: a layer ``y = W f(x)`` with ``x ~ N(0, 1)`` entries has
``Var(y) = fan_in · Var(W) · E[f(x)²]``, so ``gain = 1 / sqrt(E[f(Z)²])``,
Z ~ N(0, 1) (He et al., 2015, generalised). This reproduces relu (√2) and
linear (1). E[f(Z)²] is integrated with mpmath (40 digits) and rounded once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import mpmath

from initserve.core.errors import SpecError

_UNIT_GAIN = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
_FIXED_GAIN = {"tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 3.0 / 4}
LEAKY_RELU_DEFAULT_SLOPE = 0.01

_ACTIVATIONS: dict[str, Callable[[mpmath.mpf], mpmath.mpf]] = {
    "gelu": lambda x: x * mpmath.ncdf(x),
    "silu": lambda x: x / (1 + mpmath.exp(-x)),
    "elu": lambda x: x if x > 0 else mpmath.exp(x) - 1,
    "softplus": lambda x: mpmath.log1p(mpmath.exp(x)),
    "mish": lambda x: x * mpmath.tanh(mpmath.log1p(mpmath.exp(x))),
}
_ALIASES = {"swish": "silu"}

NONLINEARITIES: tuple[str, ...] = (*_UNIT_GAIN, *_FIXED_GAIN, "leaky_relu", *_ACTIVATIONS, *_ALIASES)


@cache
def _second_moment_gain(nonlinearity: str) -> float:
    """``1 / sqrt(E[f(Z)²])`` for Z ~ N(0, 1)."""
    f = _ACTIVATIONS[nonlinearity]
    with mpmath.workdps(40):
        moment = mpmath.quad(lambda x: f(x) ** 2 * mpmath.npdf(x), [-mpmath.inf, 0, mpmath.inf])
        return float(1 / mpmath.sqrt(moment))


def calculate_gain(nonlinearity: str, negative_slope: float | None = None) -> float:
    """The recommended gain for ``nonlinearity`` (``negative_slope`` only for leaky_relu)."""
    name = _ALIASES.get(nonlinearity, nonlinearity)
    if name in _UNIT_GAIN:
        return 1.0
    if name in _FIXED_GAIN:
        return _FIXED_GAIN[name]
    if name == "leaky_relu":
        slope = LEAKY_RELU_DEFAULT_SLOPE if negative_slope is None else negative_slope
        return math.sqrt(2.0 / (1 + slope * slope))
    if name in _ACTIVATIONS:
        return _second_moment_gain(name)
    raise SpecError("nonlinearity", nonlinearity, f"unknown nonlinearity; known: {', '.join(NONLINEARITIES)}")
