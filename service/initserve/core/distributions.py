"""Elementwise distributions: one 64-bit word in, one double out.

Each element of a sampled tensor is a pure function of its own word
``W[0, i]`` (see :mod:`initserve.core.stream`), so any slice can be generated
on its own. Words become unit numbers by exact integer-to-double steps:

* ``half_open(w) = (w >> 12) · 2**-52``                 in [0, 1);
* ``open_unit(w) = (w >> 12) · 2**-52 + 2**-53``          in (0, 1), symmetric
  about 1/2 and never 0 or 1 (so ``1 − p`` is exact and Φ⁻¹ is finite).

Every transform below uses only + - * / sqrt and comparisons (plus the
deterministic :func:`initserve.core.special.ndtri`), evaluated in double
precision; lower precisions are produced by rounding the double result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from initserve.core.special import ndtri, normal_cdf, truncated_normal_moments

_TWO_M53 = 2.0**-53
NORMAL_MAX_Z = 8.3  # |Φ⁻¹(2⁻⁵³)| = 8.29…: no standard normal value drawn here is larger
# Distribution codes of the compiled kernel (_kernel.c).
KERNEL_UNIFORM, KERNEL_NORMAL, KERNEL_TRUNC_NORMAL = 0, 1, 2


@dataclass(frozen=True)
class Theory:
    """What a method promises: mean, variance and support of its values.

    ``exact`` marks deterministic tensors (constant, eye, dirac), whose mean
    and variance are those of the values themselves rather than of a law.
    """

    mean: float
    variance: float
    low: float
    high: float
    exact: bool = False


def half_open(w: np.ndarray) -> np.ndarray:
    """Unit doubles ``k · 2**-52`` in [0, 1), ``k = w >> 12`` (the top 52 bits).

    Built exactly: the bits ``0x3FF0000000000000 | k`` are the double ``1 + k · 2**-52``.
    """
    bits = w >> np.uint64(12)
    bits |= np.uint64(0x3FF0000000000000)
    unit = bits.view(np.float64)
    unit -= 1.0
    return unit


def open_unit(w: np.ndarray) -> np.ndarray:
    """``p = (2k + 1) · 2**-53`` in (0, 1), ``k = w >> 12``: symmetric about 1/2, never 0 or 1.

    ``half_open(w) + 2**-53``, exact; ``1 − p`` and ``p − 1/2`` are exact too.
    """
    p = half_open(w)
    p += _TWO_M53
    return p


@dataclass(frozen=True)
class Uniform:
    """U[low, high): ``low + (high - low) * half_open(w)`` (torch.nn.init.uniform_)."""

    low: float
    high: float

    def kernel_args(self) -> tuple[int, tuple[float, ...]]:
        return KERNEL_UNIFORM, (self.low, self.high - self.low)

    def sample(self, w: np.ndarray) -> np.ndarray:
        x = half_open(w)
        x *= self.high - self.low
        x += self.low
        return x

    def theory(self) -> Theory:
        width = self.high - self.low
        return Theory((self.low + self.high) / 2, width * width / 12, self.low, self.high)

    def largest(self) -> float:
        """Largest magnitude a value can take (inf when ``high − low`` overflows)."""
        return max(abs(self.low), abs(self.high)) if math.isfinite(self.high - self.low) else math.inf


@dataclass(frozen=True)
class Normal:
    """N(mean, std²): ``mean + std * Φ⁻¹(open_unit(w))`` (inverse-CDF sampling)."""

    mean: float
    std: float

    def kernel_args(self) -> tuple[int, tuple[float, ...]]:
        return KERNEL_NORMAL, (self.mean, self.std)

    def sample(self, w: np.ndarray) -> np.ndarray:
        x = ndtri(open_unit(w))
        x *= self.std
        x += self.mean
        return x

    def theory(self) -> Theory:
        return Theory(self.mean, self.std * self.std, -math.inf, math.inf)

    def largest(self) -> float:
        """Largest magnitude a value can take: ``|Φ⁻¹(p)| < 8.3`` for every ``open_unit`` p."""
        return abs(self.mean) + NORMAL_MAX_Z * self.std


@dataclass(frozen=True)
class TruncatedNormal:
    """N(mean, std²) restricted to [low, high] (absolute bounds), by inverse CDF.

    With α = (low − μ)/σ and β = (high − μ)/σ: if α + β > 0 the interval is
    mirrored (sample on [−β, −α], negate) so the probabilities used lie in the
    lower tail, where doubles are dense. Then
    ``p = Φ(α) + open_unit(w) * (Φ(β) − Φ(α))``, clipped to
    ``[max(Φ(α), 2**-1074), min(Φ(β), 1 − 2**-53)]``, ``z = ndtri(p)`` clipped
    to [α, β], ``x = μ + σ z`` clipped to [low, high]. Φ(α), Φ(β) are the
    correctly rounded doubles. One word per element, unlike rejection samplers.
    """

    mean: float
    std: float
    low: float
    high: float

    def _standard_bounds(self) -> tuple[float, float, bool]:
        alpha = (self.low - self.mean) / self.std
        beta = (self.high - self.mean) / self.std
        mirrored = alpha + beta > 0
        return (-beta, -alpha, True) if mirrored else (alpha, beta, False)

    def mass(self) -> float:
        """Φ(β) − Φ(α) of the (mirrored) standard interval; 0 means unusable."""
        a, b, _ = self._standard_bounds()
        return normal_cdf(b) - normal_cdf(a)

    def _unit_bounds(self) -> tuple[float, float, float, float]:
        """Φ(α), Φ(β) − Φ(α) and the clip range of p."""
        a, b, _ = self._standard_bounds()
        cdf_a, cdf_b = normal_cdf(a), normal_cdf(b)
        return cdf_a, cdf_b - cdf_a, max(cdf_a, 5e-324), min(cdf_b, 1.0 - _TWO_M53)

    def kernel_args(self) -> tuple[int, tuple[float, ...]]:
        a, b, mirrored = self._standard_bounds()
        return KERNEL_TRUNC_NORMAL, (*self._unit_bounds(), a, b, float(mirrored), self.mean, self.std,
                                     self.low, self.high)

    def sample(self, w: np.ndarray) -> np.ndarray:
        a, b, mirrored = self._standard_bounds()
        cdf_a, width, clip_low, clip_high = self._unit_bounds()
        p = open_unit(w)
        p *= width
        p += cdf_a
        np.clip(p, clip_low, clip_high, out=p)
        z = ndtri(p)
        np.clip(z, a, b, out=z)
        if mirrored:
            np.negative(z, out=z)
        z *= self.std
        z += self.mean
        np.clip(z, self.low, self.high, out=z)
        return z

    def largest(self) -> float:
        return max(abs(self.low), abs(self.high))

    def theory(self) -> Theory:
        mean, variance = truncated_normal_moments(self.mean, self.std, self.low, self.high)
        return Theory(mean, variance, self.low, self.high)


Distribution = Uniform | Normal | TruncatedNormal
