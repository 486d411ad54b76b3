"""Statistics of a tensor, empirical against theory, and whether they agree.

:func:`tensor_statistics` computes the figures of exactly the tensor that
``/v1/tensor`` returns (its stored values, widened to float64). Above
``max_sample`` elements it uses a deterministic subsample: the elements at
row-major flat indices ⌊k·n/m⌋, k = 0 … m−1 (m = ``max_sample``), generated
alone. Every figure, in one sentence each:

- ``n``, ``sample_size``: the tensor's elements, and how many were used;
- ``mean``, ``variance`` (divisor m−1), ``std``, ``min``, ``max`` of the sample;
- ``skewness`` and ``excess_kurtosis``: third and fourth standardized moments (0 for a normal law);
- ``theory``: the method's mean, variance, std and support ``[low, high]``;
- ``standard_error_mean`` = √(theory variance / m), and ``z_mean`` = (mean − theory mean) / that;
- ``variance_ratio`` = variance / theory variance, with ``variance_ratio_interval`` = ratio ± z·SE,
  SE = √((κ + 3 − (m−3)/(m−1)) / m), κ the law's excess kurtosis (the sample's when the law has none);
- ``fit``: a Kolmogorov–Smirnov test of at most :data:`MAX_FIT_SAMPLE` evenly spaced sample values
  (exact zeros of sparse tensors and zeroed rows left out) against the law's CDF: statistic and p-value;
- ``histogram``: ``bins`` equal bins over [min, max], observed counts and the counts the law expects;
- ``checks``: the method's exact properties (:mod:`initserve.core.stats.checks`);
- a random law whose variance is outside :data:`VARIANCE_RANGE` (10⁻²⁹⁰ … 10²⁹⁰) is refused: its
  moments would under- or overflow float64;
- ``consistent``: true when |z_mean| ≤ z, the interval holds 1, the fit's p-value ≥ α and every
  check passes, with α = :data:`ALPHA` per test (z = Φ⁻¹(1 − α/2) = 3.29); exact tensors are judged
  by their checks alone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from initserve.core.dtypes import round_to
from initserve.core.errors import SpecError
from initserve.core.stats.checks import Check, method_checks
from initserve.core.stats.reference import Reference, reference_for
from initserve.core.tensor import Tensor

ALPHA = 1e-3
Z_CRITICAL = float(stats.norm.isf(ALPHA / 2))
MAX_SAMPLE = 1 << 20
MAX_FIT_SAMPLE = 1 << 16
DEFAULT_BINS = 20
VARIANCE_RANGE = (1e-290, 1e290)


def sample_indices(n: int, size: int) -> np.ndarray:
    """The deterministic subsample: flat indices ⌊k·n/size⌋ for k = 0 … size−1 (all of them when n ≤ size)."""
    if n <= size:
        return np.arange(n, dtype=np.int64)
    return (np.arange(size, dtype=np.int64) * n) // size


def stored_values(tensor: Tensor, max_sample: int) -> np.ndarray:
    """The sample of the tensor's stored values, as float64."""
    values = tensor.take(sample_indices(tensor.numel, max_sample))
    if tensor.dtype == "bfloat16":
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(np.float64)


def _fit(values: np.ndarray, reference: Reference) -> dict[str, Any] | None:
    if reference.cdf is None:
        return None
    if reference.zero_mass:
        values = values[values != 0.0]
    values = values[sample_indices(values.size, MAX_FIT_SAMPLE)]
    if values.size < 2:
        return None
    result = stats.kstest(values, reference.cdf)
    return {"test": "kolmogorov_smirnov", "size": int(values.size), "statistic": float(result.statistic),
            "p_value": float(result.pvalue)}


def _histogram(values: np.ndarray, reference: Reference, bins: int) -> dict[str, Any]:
    if not values.size:
        return {"edges": [], "counts": [], "expected": None}
    if values.min() == values.max():  # one value: one degenerate bin
        return {"edges": [float(values[0])] * 2, "counts": [int(values.size)], "expected": None}
    counts, edges = np.histogram(values, bins=bins)
    expected = None
    if reference.cdf is not None:
        mass = np.diff(reference.cdf(edges)) * (1.0 - reference.zero_mass)
        if reference.zero_mass:
            zero_bin = min(int(np.searchsorted(edges, 0.0, side="right")) - 1, bins - 1)
            if 0 <= zero_bin and edges[0] <= 0.0 <= edges[-1]:
                mass[zero_bin] += reference.zero_mass
        expected = (mass * values.size).tolist()
    return {"edges": edges.tolist(), "counts": counts.tolist(), "expected": expected}


def _moments(values: np.ndarray) -> dict[str, float | None]:
    size = values.size
    if not size:
        return {"mean": None, "variance": None, "std": None, "min": None, "max": None, "skewness": None,
                "excess_kurtosis": None}
    variance = float(values.var(ddof=1)) if size > 1 else 0.0
    spread = values.std() > 0
    return {
        "mean": float(values.mean()),
        "variance": variance,
        "std": math.sqrt(variance),
        "min": float(values.min()),
        "max": float(values.max()),
        "skewness": float(stats.skew(values)) if spread else None,
        "excess_kurtosis": float(stats.kurtosis(values)) if spread else None,
    }


def _check_scale(tensor: Tensor, reference: Reference) -> None:
    """A random law's variance must be a normal float64 well inside the range (squares and sums stay finite)."""
    variance = reference.theory.variance
    if reference.cdf is None or reference.zero_mass >= 1.0 or VARIANCE_RANGE[0] <= variance <= VARIANCE_RANGE[1]:
        return
    numeric = {k: v for k, v in tensor.spec.params.items() if isinstance(v, float) and v != 0.0}
    field = max(numeric, key=lambda k: abs(math.log(abs(numeric[k])))) if numeric else "shape"
    raise SpecError(field, numeric.get(field, list(tensor.shape)), f"statistics need a variance within "
                    f"{VARIANCE_RANGE[0]:g} … {VARIANCE_RANGE[1]:g} in float64; this law's is {variance:g}")


def _constant_check(values: np.ndarray, value: float, dtype: str) -> Check:
    """A law without spread (a normal with std 0): every value is ``value`` rounded to the dtype."""
    stored = stored_scalar(value, dtype)
    return Check("constant", float(np.count_nonzero(values != stored)), 0, f"entries differing from {value!r}")


def stored_scalar(value: float, dtype: str) -> float:
    """``value`` as the dtype stores it, widened back to float64."""
    stored = round_to(np.array([value]), dtype)
    if dtype == "bfloat16":
        stored = (stored.astype(np.uint32) << 16).view(np.float32)
    return float(stored[0])


def _interval(ratio: float, kurtosis: float, size: int) -> tuple[float, float]:
    error = math.sqrt(max(kurtosis + 3 - (size - 3) / (size - 1), 0.0) / size)
    return ratio - Z_CRITICAL * error, ratio + Z_CRITICAL * error


def tensor_statistics(tensor: Tensor, *, bins: int = DEFAULT_BINS, max_sample: int = MAX_SAMPLE,
                      reference: Reference | None = None) -> dict[str, Any]:
    """Every figure of the module docstring for ``tensor`` (``reference``: a test hook, default its own law)."""
    reference = reference or reference_for(tensor)
    _check_scale(tensor, reference)
    values = stored_values(tensor, max_sample)
    empirical = _moments(values)
    theory = reference.theory
    report: dict[str, Any] = {
        "name": tensor.name, "shape": list(tensor.shape), "dtype": tensor.dtype, "method": tensor.spec.method,
        "law": reference.law, "n": tensor.numel, "sample_size": int(values.size), **empirical,
        "theory": {"mean": theory.mean, "variance": theory.variance, "std": math.sqrt(theory.variance),
                   "low": theory.low, "high": theory.high, "exact": theory.exact},
    }
    checks = method_checks(tensor)
    size = values.size
    random = theory.variance > 0 and not theory.exact and size > 1
    if theory.variance == 0 and not checks and size:
        checks.append(_constant_check(values, theory.mean, tensor.dtype))
    verdicts = [check.passed for check in checks]
    if random:
        error = math.sqrt(theory.variance / size)
        z_mean = (empirical["mean"] - theory.mean) / error  # type: ignore[operator]
        ratio = empirical["variance"] / theory.variance  # type: ignore[operator]
        kurtosis = reference.excess_kurtosis if reference.excess_kurtosis is not None else (
            empirical["excess_kurtosis"] or 0.0)
        low, high = _interval(ratio, kurtosis, size)
        fit = _fit(values, reference)
        report |= {"standard_error_mean": error, "z_mean": z_mean, "variance_ratio": ratio,
                   "variance_ratio_interval": [low, high], "fit": fit}
        verdicts += [abs(z_mean) <= Z_CRITICAL, low <= 1.0 <= high]
        if fit is not None:
            verdicts.append(fit["p_value"] >= ALPHA)
    else:
        report |= {"standard_error_mean": None, "z_mean": None, "variance_ratio": None,
                   "variance_ratio_interval": None, "fit": None}
    report["histogram"] = _histogram(values, reference, bins)
    report["checks"] = [check.as_dict() for check in checks]
    report["consistent"] = all(verdicts)
    return report
