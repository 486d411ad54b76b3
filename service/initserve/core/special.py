"""Special functions built only from correctly rounded operations.

Everything here that runs on sampled data uses + - * /, sqrt, comparisons and
exact exponent manipulation (frexp), each as a separate numpy ufunc call, so
the result is the same on every CPU and SIMD level (no libm, no FMA).

* :func:`log` — natural logarithm via frexp and the atanh series.
* :func:`ndtri` — inverse of the standard normal CDF, Wichura's algorithm
  AS 241 (PPND16, Applied Statistics 37(3), 1988, relative accuracy ~1e-16).

Scalar constants that need exp/erf (normal CDF at truncation points,
truncated-normal moments) are computed with mpmath at 50 significant digits and
rounded once to the nearest double: the value is then the correctly rounded
exact value, reproducible in any language.
"""

from __future__ import annotations

from functools import cache

import mpmath
import numpy as np

LN2 = 0.6931471805599453  # fl(ln 2) = 0x3FE62E42FEFA39EF
SQRT_HALF = 0.7071067811865476  # fl(sqrt(1/2))
# 1 / (2k + 1), k = 0..10, each correctly rounded: the atanh series of log.
_LOG_SERIES = tuple(1.0 / (2 * k + 1) for k in range(11))

# AS 241 coefficients, highest degree first (Horner order).
_A = (2.5090809287301226727e3, 3.3430575583588128105e4, 6.7265770927008700853e4, 4.5921953931549871457e4,
      1.3731693765509461125e4, 1.9715909503065514427e3, 1.3314166789178437745e2, 3.3871328727963666080e0)
_B = (5.2264952788528545610e3, 2.8729085735721942674e4, 3.9307895800092710610e4, 2.1213794301586595867e4,
      5.3941960214247511077e3, 6.8718700749205790830e2, 4.2313330701600911252e1, 1.0)
_C = (7.74545014278341407640e-4, 2.27238449892691845833e-2, 2.41780725177450611770e-1, 1.27045825245236838258e0,
      3.64784832476320460504e0, 5.76949722146069140550e0, 4.63033784615654529590e0, 1.42343711074968357734e0)
_D = (1.05075007164441684324e-9, 5.47593808499534494600e-4, 1.51986665636164571966e-2, 1.48103976427480074590e-1,
      6.89767334985100004550e-1, 1.67638483018380384940e0, 2.05319162663775882187e0, 1.0)
_E = (2.01033439929228813265e-7, 2.71155556874348757815e-5, 1.24266094738807843860e-3, 2.65321895265761230930e-2,
      2.96560571828504891230e-1, 1.78482653991729133580e0, 5.46378491116411436990e0, 6.65790464350110377720e0)
_F = (2.04426310338993978564e-15, 1.42151175831644588870e-7, 1.84631831751005468180e-5, 7.86869131145613259100e-4,
      1.48753612908506148525e-2, 1.36929880922735805310e-1, 5.99832206555887937690e-1, 1.0)

# Standard deviation of N(0, 1) truncated to [-2, 2]: Keras/JAX divide by it so
# a truncated normal keeps the intended variance.
TRUNCATED_NORMAL_STD_2 = 0.87962566103423978


def _horner(coefficients: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    """Evaluate a polynomial (highest degree first) as ``(c0*x + c1)*x + ...``."""
    acc = np.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        np.multiply(acc, x, out=acc)
        np.add(acc, c, out=acc)
    return acc


def log(x: np.ndarray) -> np.ndarray:
    """Natural log of positive finite doubles, deterministic on every CPU.

    ``x = m * 2**e`` with ``m`` in [sqrt(1/2), sqrt(2)) (frexp, then one exact
    doubling), ``s = (m - 1) / (m + 1)`` so ``|s| <= 0.1716``, and
    ``log(m) = 2 s (1 + s^2/3 + s^4/5 + ... + s^20/21)`` (truncation error
    < 1e-17), ``log(x) = e * ln2 + log(m)``. Accurate to a few ulp.
    """
    m, e = np.frexp(x)
    small = m < SQRT_HALF
    m = np.where(small, m * 2.0, m)
    e = e - small
    f = m - 1.0
    s = f / (f + 2.0)
    series = _horner(_LOG_SERIES[::-1], s * s)
    result: np.ndarray = e * LN2 + (s + s) * series
    return result


def ndtri(p: np.ndarray) -> np.ndarray:
    """Standard normal quantile Φ⁻¹(p) for doubles p in (0, 1) (AS 241, PPND16).

    ``q = p − 1/2``. Central region ``|q| <= 0.425``: ``q · A(r) / B(r)`` with
    ``r = 0.180625 − q²``. Tails: ``r = sqrt(−log(min(p, 1 − p)))``, then
    ``C(r − 1.6) / D(r − 1.6)`` if r <= 5, else ``E(r − 5) / F(r − 5)``, with
    the sign of q. The central formula is evaluated everywhere and the tails
    (15% of a uniform sample) overwritten.
    """
    q = p - 0.5
    r = q * q
    np.subtract(0.180625, r, out=r)
    out = _horner(_A, r)
    out *= q
    out /= _horner(_B, r)
    tail = np.flatnonzero(np.abs(q) > 0.425)
    if tail.size:
        qt = q[tail]
        pt = p[tail]
        rt = np.sqrt(-log(np.where(qt < 0.0, pt, 1.0 - pt)))
        rn = rt - 1.6
        value = _horner(_C, rn) / _horner(_D, rn)
        far = np.flatnonzero(rt > 5.0)  # min(p, 1 − p) < e⁻²⁵: rare
        if far.size:
            rf = rt[far] - 5.0
            value[far] = _horner(_E, rf) / _horner(_F, rf)
        out[tail] = np.where(qt < 0.0, -value, value)
    return out


# --- scalar constants (mpmath, 50 digits, rounded once) ----------------------------

_DPS = 50


@cache
def normal_cdf(x: float) -> float:
    """Φ(x), correctly rounded to double."""
    with mpmath.workdps(_DPS):
        return float(mpmath.ncdf(mpmath.mpf(x)))


_FAR = mpmath.mpf(10) ** 6


def truncated_normal_moments(mean: float, std: float, low: float, high: float) -> tuple[float, float]:
    """Mean and variance of N(mean, std²) truncated to the finite interval [low, high].

    With α = (low − μ)/σ, β = (high − μ)/σ, Z = Φ(β) − Φ(α):
    E = μ + σ (φ(α) − φ(β)) / Z and
    Var = σ² [1 + (α φ(α) − β φ(β)) / Z − ((φ(α) − φ(β)) / Z)²]
    (Johnson, Kotz & Balakrishnan, Continuous Univariate Distributions, 1994).
    An interval in the upper tail is mirrored into the lower one (Z without cancellation),
    and α, β are clipped to ±10⁶, beyond which φ and the tails are 0 at this precision.
    """
    with mpmath.workdps(_DPS):
        mu, sigma = mpmath.mpf(mean), mpmath.mpf(std)
        a, b = (mpmath.mpf(low) - mu) / sigma, (mpmath.mpf(high) - mu) / sigma
        sign = -1 if a + b > 0 else 1
        if sign < 0:
            a, b = -b, -a
        a, b = (max(min(x, _FAR), -_FAR) for x in (a, b))
        pa, pb = mpmath.npdf(a), mpmath.npdf(b)
        z = mpmath.ncdf(b) - mpmath.ncdf(a)
        ratio = (pa - pb) / z
        var = sigma * sigma * (1 + (a * pa - b * pb) / z - ratio * ratio)
        return float(mu + sign * sigma * ratio), float(var)
