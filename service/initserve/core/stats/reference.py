"""What a tensor's values should look like, for the statistics to compare against.

A :class:`Reference` holds the method's :class:`Theory` (mean, variance,
support), the excess kurtosis of the law (for the standard error of the
variance), and the CDF of its continuous part (for the goodness-of-fit test and
the expected histogram). ``zero_mass`` is the share of values set to exactly 0
by construction (sparse columns, ``zero_rows``); those are left out of the
goodness-of-fit test. Laws:

- uniform U[a, b]: F(x) = (x − a)/(b − a), excess kurtosis −6/5;
- normal N(μ, σ²): F = Φ((x − μ)/σ), excess kurtosis 0;
- truncated normal: scipy's ``truncnorm`` with the same bounds (its kurtosis too);
- orthogonal (and each entry of any column-orthonormal m × k matrix, m ≥ k,
  scaled by g): a column is uniform on the sphere S^{m−1}, so x²/g² ~ Beta(1/2, (m−1)/2);
  excess kurtosis −6/(m + 2);
- sparse: N(0, σ²) for the kept entries, zeros by construction;
- exact methods (zeros, ones, constant, eye, dirac) and delta_orthogonal: no law; the
  method checks of :mod:`initserve.core.stats.checks` decide.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from initserve.core.distributions import Normal, Theory, TruncatedNormal, Uniform
from initserve.core.plans import Dense, Sampled
from initserve.core.tensor import Tensor

Cdf = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Reference:
    """The law a tensor's values are compared with."""

    theory: Theory
    law: str
    cdf: Cdf | None = None
    excess_kurtosis: float | None = None
    zero_mass: float = 0.0


def uniform_cdf(low: float, high: float) -> Cdf:
    return lambda x: np.clip((x - low) / (high - low), 0.0, 1.0)


def normal_cdf(mean: float, std: float) -> Cdf:
    return lambda x: special.ndtr((x - mean) / std)


def sphere_entry_cdf(scale: float, dimension: int) -> Cdf:
    """CDF of ``scale · x`` for one coordinate ``x`` of a uniform point on the sphere S^{dimension−1}."""

    def cdf(x: np.ndarray) -> np.ndarray:
        if dimension == 1:
            return np.where(x < -scale, 0.0, np.where(x < scale, 0.5, 1.0))
        squared = np.clip((x / scale) ** 2, 0.0, 1.0)
        return np.asarray(0.5 + 0.5 * np.sign(x) * special.betainc(0.5, (dimension - 1) / 2, squared))

    return cdf


def _sampled(tensor: Tensor, plan: Sampled) -> Reference:
    law = plan.distribution
    theory = tensor.theory
    if isinstance(law, Uniform):
        return Reference(theory, f"U[{law.low:.6g}, {law.high:.6g}]", uniform_cdf(law.low, law.high), -1.2)
    if isinstance(law, Normal):
        if law.std == 0:
            return Reference(theory, f"constant {law.mean:.6g}")
        return Reference(theory, f"N({law.mean:.6g}, {law.std:.6g}²)", normal_cdf(law.mean, law.std), 0.0)
    assert isinstance(law, TruncatedNormal)
    a, b = (law.low - law.mean) / law.std, (law.high - law.mean) / law.std
    frozen = stats.truncnorm(a, b, loc=law.mean, scale=law.std)
    return Reference(theory, f"N({law.mean:.6g}, {law.std:.6g}²) on [{law.low:.6g}, {law.high:.6g}]",
                     frozen.cdf, float(frozen.stats(moments="k")))


def reference_for(tensor: Tensor) -> Reference:
    """The reference law of ``tensor`` (see the module docstring)."""
    plan, spec, theory = tensor.plan, tensor.spec, tensor.theory
    if isinstance(plan, Sampled):
        reference = _sampled(tensor, plan)
    elif spec.method == "orthogonal" and isinstance(plan, Dense):
        side = max(plan.matrix)
        gain = spec.params["gain"]
        reference = Reference(theory, f"orthogonal, gain {gain:.6g}: (x/gain)² ~ Beta(1/2, {(side - 1) / 2:g})",
                              sphere_entry_cdf(gain, side) if gain > 0 and side else None, -6.0 / (side + 2))
    elif spec.method == "sparse":
        rows = spec.shape[0] if spec.layout == "torch" else spec.shape[-1]
        zeros = math.ceil(spec.params["sparsity"] * rows)
        std = spec.params["std"]
        kept = (rows - zeros) / rows if rows else 0.0
        return _with_zero_rows(tensor, Reference(theory, f"N(0, {std:.6g}²) with {zeros} zeros per column",
                                                 normal_cdf(0.0, std) if std > 0 else None, None, 1.0 - kept))
    else:
        reference = Reference(theory, "exact" if theory.exact else spec.method)
    return _with_zero_rows(tensor, reference)


def _with_zero_rows(tensor: Tensor, reference: Reference) -> Reference:
    """Zeroed rows add exact zeros: their share joins ``zero_mass`` and the kurtosis is left to the data."""
    zeroed = sum(stop - start for start, stop in tensor.spec.zero_rows)
    if not zeroed:
        return reference
    share = zeroed / tensor.spec.shape[0]
    mass = 1.0 - (1.0 - reference.zero_mass) * (1.0 - share)
    return Reference(reference.theory, reference.law + f", rows {list(tensor.spec.zero_rows)} zero", reference.cdf,
                     None, mass)
