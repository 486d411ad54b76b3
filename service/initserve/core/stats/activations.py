"""Activation functions and their derivatives, for pushing a batch through a stack of layers.

Names are those of :data:`initserve.core.gains.NONLINEARITIES` (``None`` or ``linear`` and the
``conv*`` names are the identity). ``saturated`` says which outputs count as saturated:
|a| > 0.99 for tanh, a < 0.01 or a > 0.99 for sigmoid; for the rectifiers it marks inactive
units (pre-activation ≤ 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from initserve.core.gains import LEAKY_RELU_DEFAULT_SLOPE

Function = Callable[[np.ndarray], np.ndarray]
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@dataclass(frozen=True)
class Activation:
    """f, f′ and what counts as saturated (on the pre-activation ``h`` and the output ``a``)."""

    name: str
    f: Function
    derivative: Function
    saturated: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def _identity(h: np.ndarray) -> np.ndarray:
    return h


def _sigmoid(h: np.ndarray) -> np.ndarray:
    return np.asarray(special.expit(h))


def _inactive(h: np.ndarray, a: np.ndarray) -> np.ndarray:
    return h <= 0


def activation(name: str | None, negative_slope: float | None = None) -> Activation:
    """The activation called ``name``."""
    if name is None or name == "linear" or name.startswith("conv"):
        return Activation("linear", _identity, np.ones_like)
    if name == "relu":
        return Activation(name, lambda h: np.maximum(h, 0.0), lambda h: (h > 0).astype(np.float64), _inactive)
    if name == "leaky_relu":
        slope = LEAKY_RELU_DEFAULT_SLOPE if negative_slope is None else negative_slope
        return Activation(name, lambda h: np.where(h > 0, h, slope * h), lambda h: np.where(h > 0, 1.0, slope),
                          _inactive)
    if name == "tanh":
        return Activation(name, np.tanh, lambda h: 1.0 - np.tanh(h) ** 2, lambda h, a: np.abs(a) > 0.99)
    if name == "sigmoid":
        return Activation(name, _sigmoid, lambda h: _sigmoid(h) * (1.0 - _sigmoid(h)),
                          lambda h, a: (a < 0.01) | (a > 0.99))
    if name == "selu":
        return Activation(name, lambda h: SELU_SCALE * np.where(h > 0, h, SELU_ALPHA * np.expm1(np.minimum(h, 0))),
                          lambda h: SELU_SCALE * np.where(h > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(h, 0))))
    if name == "elu":
        return Activation(name, lambda h: np.where(h > 0, h, np.expm1(np.minimum(h, 0))),
                          lambda h: np.where(h > 0, 1.0, np.exp(np.minimum(h, 0))))
    if name == "gelu":
        return Activation(name, lambda h: h * special.ndtr(h),
                          lambda h: special.ndtr(h) + h * np.exp(-h * h / 2) / math.sqrt(2 * math.pi))
    if name in ("silu", "swish"):
        return Activation("silu", lambda h: h * _sigmoid(h), lambda h: _sigmoid(h) * (1 + h * (1 - _sigmoid(h))))
    if name == "softplus":
        return Activation(name, lambda h: np.logaddexp(0.0, h), _sigmoid)
    if name == "mish":
        def mish(h: np.ndarray) -> np.ndarray:
            return np.asarray(h * np.tanh(np.logaddexp(0.0, h)))

        def mish_derivative(h: np.ndarray) -> np.ndarray:
            t = np.tanh(np.logaddexp(0.0, h))
            return np.asarray(t + h * (1 - t * t) * _sigmoid(h))

        return Activation(name, mish, mish_derivative)
    raise ValueError(f"no activation {name!r}")  # the request models only admit NONLINEARITIES
