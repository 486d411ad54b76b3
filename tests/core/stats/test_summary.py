"""``tensor_statistics``: every reported figure against an independent computation, and a verdict that can fail.

The independent side starts from ``resolve(...).region()`` (the whole stored tensor, widened to float64;
bfloat16 through ``<< 16``), takes the subsample at ⌊k·n/m⌋ with Python integers, and computes with numpy and
scipy: the moments, the theory of each law written out here in closed form from the method's definition (fans
counted by hand in the table), the standard error, z, the variance ratio and its interval (the formula of the
summary docstring), a Kolmogorov–Smirnov test against CDFs built here (``scipy.stats`` laws; the Beta law of
orthogonal entries), the histogram and the counts the law expects, and the method checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from initserve.core import resolve
from initserve.core.distributions import Theory
from initserve.core.stats import ALPHA, MAX_SAMPLE, Reference, reference_for, tensor_statistics
from initserve.core.stats import checks as checks_module
from initserve.core.stats.checks import Check
from initserve.core.stats.reference import normal_cdf, uniform_cdf
from initserve.core.stats.summary import DEFAULT_BINS, MAX_FIT_SAMPLE, Z_CRITICAL, sample_indices

Cdf = Callable[[np.ndarray], np.ndarray]
INF = math.inf
Z = float(stats.norm.ppf(1 - ALPHA / 2))  # the two-sided critical value at ALPHA
FIT_SAMPLE = 1 << 16  # the documented largest KS sample
EPS = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7, "int64": 0.0}


# ------------------------------------------------------------------------------------------ laws, by hand


@dataclass(frozen=True)
class Law:
    """What a tensor's values should look like, computed here from the method's definition."""

    mean: float
    variance: float
    low: float
    high: float
    cdf: Cdf | None = None  # of the continuous part
    kurtosis: float | None = None  # the law's excess kurtosis; None: the interval uses the sample's
    zeros: float = 0.0  # share of exact zeros by construction (left out of the fit)
    exact: bool = False  # deterministic tensor: the theory is the values' own mean and variance


EXACT = Law(math.nan, math.nan, math.nan, math.nan, exact=True)


def normal(mean: float, std: float) -> Law:
    return Law(mean, std * std, -INF, INF, stats.norm(mean, std).cdf, 0.0)


def uniform(low: float, high: float) -> Law:
    return Law((low + high) / 2, (high - low) ** 2 / 12, low, high, stats.uniform(low, high - low).cdf, -1.2)


def symmetric_uniform(bound: float) -> Law:
    return uniform(-bound, bound)


def truncated(mean: float, std: float, low: float, high: float) -> Law:
    """N(mean, std²) on [low, high]: moments by numerical integration of the density."""
    mass = stats.norm.cdf(high, mean, std) - stats.norm.cdf(low, mean, std)

    def moment(power: int, centre: float) -> float:
        value, _ = integrate.quad(lambda x: (x - centre) ** power * stats.norm.pdf(x, mean, std) / mass, low, high,
                                  epsabs=1e-12 * std**power, epsrel=1e-12, limit=200)
        return float(value)

    first = moment(1, 0.0)
    second, fourth = moment(2, first), moment(4, first)
    frozen = stats.truncnorm((low - mean) / std, (high - mean) / std, loc=mean, scale=std)
    return Law(first, second, low, high, frozen.cdf, fourth / second**2 - 3)


def keras_truncated(std: float) -> Law:
    """Keras' truncated normal of standard deviation ``std``: σ = std / 0.8796…, cut at ±2σ."""
    sigma = std / float(stats.truncnorm(-2, 2).std())
    return truncated(0.0, sigma, -2 * sigma, 2 * sigma)


def sphere(gain: float, dimension: int) -> Law:
    """``gain · x``, x one coordinate of a uniform point on S^{dimension−1}: (x)² ~ Beta(1/2, (dimension−1)/2)."""
    a, b = 0.5, (dimension - 1) / 2
    beta = stats.beta(a, b)

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.asarray(0.5 + 0.5 * np.sign(x) * beta.cdf(np.minimum((np.asarray(x) / gain) ** 2, 1.0)))

    second = a / (a + b)  # E[x²] = 1/dimension
    fourth = a * (a + 1) / ((a + b) * (a + b + 1))  # E[x⁴]
    return Law(0.0, gain * gain * second, -gain, gain, cdf, fourth / second**2 - 3)


def sparse(std: float, rows: int, zeros: int) -> Law:
    kept = (rows - zeros) / rows
    return Law(0.0, std * std * kept, -INF, INF, stats.norm(0.0, std).cdf, None, zeros / rows)


def with_zero_rows(law: Law, share: float) -> Law:
    """A share of the rows set to zero: a mixture with a point mass at 0."""
    kept = 1 - share
    mean = kept * law.mean
    second = kept * (law.variance + law.mean**2)
    return Law(mean, second - mean * mean, min(law.low, 0.0), max(law.high, 0.0), law.cdf, None,
               1 - (1 - law.zeros) * kept)


# ------------------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Case:
    spec: dict[str, Any]
    law: Law
    max_sample: int = MAX_SAMPLE
    bins: int = DEFAULT_BINS


def case(name: str, spec: dict[str, Any], law: Law, **options: Any) -> Any:
    return pytest.param(Case(spec, law, **options), id=name)


S3 = math.sqrt(3.0)
CASES = [
    # elementwise laws, every float dtype
    case("normal", {"method": "normal", "shape": [37, 29], "mean": 1.0, "std": 0.5}, normal(1.0, 0.5)),
    case("normal-float64", {"method": "normal", "shape": [64, 64], "std": 2.0, "dtype": "float64", "seed": 3},
         normal(0.0, 2.0)),
    case("normal-float16", {"method": "normal", "shape": [50, 40], "std": 0.1, "dtype": "float16", "seed": 1},
         normal(0.0, 0.1)),
    case("normal-bfloat16", {"method": "normal", "shape": [50, 40], "mean": -1.0, "std": 3.0, "dtype": "bfloat16"},
         normal(-1.0, 3.0)),
    case("uniform", {"method": "uniform", "shape": [301], "low": -0.5, "high": 2.0}, uniform(-0.5, 2.0)),
    case("uniform-bfloat16", {"method": "uniform", "shape": [37, 29], "dtype": "bfloat16", "seed": 9},
         uniform(0.0, 1.0)),
    case("uniform-float16", {"method": "uniform", "shape": [3000], "low": -4.0, "high": 4.0, "dtype": "float16"},
         uniform(-4.0, 4.0)),
    case("trunc_normal", {"method": "trunc_normal", "shape": [2000], "mean": 0.5, "std": 1.0, "low": -1.0,
                          "high": 2.5}, truncated(0.5, 1.0, -1.0, 2.5)),
    case("trunc_normal-bounds-std", {"method": "trunc_normal", "shape": [40, 50], "std": 2.0, "low": -1.0,
                                     "high": 1.5, "bounds": "std", "dtype": "float64"},
         truncated(0.0, 2.0, -2.0, 3.0)),
    # fans by hand: torch [out, in, *k], keras/jax [*k, in, out]; fan = channels × receptive field
    case("xavier_uniform-torch", {"method": "xavier_uniform", "shape": [16, 8, 3, 3]},
         symmetric_uniform(S3 * math.sqrt(2 / (8 * 9 + 16 * 9)))),
    case("xavier_uniform-keras", {"method": "xavier_uniform", "shape": [3, 3, 8, 16], "layout": "keras"},
         symmetric_uniform(S3 * math.sqrt(2 / (8 * 9 + 16 * 9)))),
    case("xavier_normal-gain", {"method": "xavier_normal", "shape": [37, 29], "gain": 2.0},
         normal(0.0, 2 * math.sqrt(2 / (29 + 37)))),
    case("xavier_normal-keras-truncated", {"method": "xavier_normal", "shape": [5, 5, 4, 8], "layout": "keras",
                                           "truncated": True}, keras_truncated(math.sqrt(2 / (4 * 25 + 8 * 25)))),
    case("kaiming_uniform-torch-default", {"method": "kaiming_uniform", "shape": [16, 8, 3, 3],
                                           "negative_slope": math.sqrt(5)}, symmetric_uniform(1 / math.sqrt(72))),
    case("kaiming_normal-fan_out", {"method": "kaiming_normal", "shape": [37, 29], "mode": "fan_out",
                                    "nonlinearity": "relu"}, normal(0.0, math.sqrt(2) / math.sqrt(37))),
    case("kaiming_normal-jax-float16", {"method": "kaiming_normal", "shape": [3, 3, 16, 32], "layout": "jax",
                                        "nonlinearity": "relu", "dtype": "float16"},
         normal(0.0, math.sqrt(2) / math.sqrt(16 * 9))),
    case("lecun_normal", {"method": "lecun_normal", "shape": [37, 29]}, keras_truncated(math.sqrt(1 / 29))),
    case("variance_scaling-keras", {"method": "variance_scaling", "shape": [3, 3, 4, 8], "layout": "keras",
                                    "mode": "fan_avg", "distribution": "uniform"},
         symmetric_uniform(math.sqrt(3 / ((36 + 72) / 2)))),
    # orthogonal: the longer side is the sphere's dimension
    case("orthogonal-tall", {"method": "orthogonal", "shape": [37, 29], "gain": 1.5}, sphere(1.5, 37)),
    case("orthogonal-wide", {"method": "orthogonal", "shape": [20, 45]}, sphere(1.0, 45)),
    case("orthogonal-keras-conv", {"method": "orthogonal", "shape": [3, 3, 3, 8], "layout": "keras", "gain": 0.5},
         sphere(0.5, 27)),
    case("orthogonal-float64", {"method": "orthogonal", "shape": [60, 60], "dtype": "float64", "seed": 4},
         sphere(1.0, 60)),
    case("orthogonal-bfloat16", {"method": "orthogonal", "shape": [48, 64], "dtype": "bfloat16"}, sphere(1.0, 64)),
    # sparse: ⌈0.3·37⌉ = 12 zeros in each of the 29 columns
    case("sparse", {"method": "sparse", "shape": [37, 29], "sparsity": 0.3, "std": 0.02}, sparse(0.02, 37, 12)),
    case("sparse-keras", {"method": "sparse", "shape": [29, 37], "layout": "keras", "sparsity": 0.3},
         sparse(0.01, 37, 12)),
    case("delta_orthogonal", {"method": "delta_orthogonal", "shape": [8, 4, 3]},
         Law(0.0, 1 / (8 * 3), -1.0, 1.0)),
    case("delta_orthogonal-jax", {"method": "delta_orthogonal", "shape": [3, 3, 6, 6], "layout": "jax", "gain": 2.0},
         Law(0.0, 4 / (6 * 9), -2.0, 2.0)),
    # exact tensors: judged by their checks
    case("eye", {"method": "eye", "shape": [7, 9], "gain": 2.0}, EXACT),
    case("eye-tall-float16", {"method": "eye", "shape": [9, 7], "dtype": "float16"}, EXACT),
    case("dirac", {"method": "dirac", "shape": [6, 3, 3, 3]}, EXACT),
    case("dirac-groups-keras", {"method": "dirac", "shape": [3, 4, 8], "groups": 2, "layout": "keras"}, EXACT),
    case("constant", {"method": "constant", "shape": [3, 5, 2], "value": -0.25}, EXACT),
    case("constant-bfloat16", {"method": "constant", "shape": [4, 4], "value": 1.5, "dtype": "bfloat16"}, EXACT),
    case("ones-int64", {"method": "ones", "shape": [3, 4], "dtype": "int64"}, EXACT),
    case("zeros", {"method": "zeros", "shape": [7]}, EXACT),
    case("normal-std-0", {"method": "normal", "shape": [5, 4], "mean": 0.3, "std": 0.0, "dtype": "float16"},
         Law(0.3, 0.0, -INF, INF)),
    # zero_rows: 6 of 40 rows; keras: 3 of 30 rows of the shape as given (input channels)
    case("normal-zero_rows", {"method": "normal", "shape": [40, 30], "mean": 0.5, "zero_rows": [[0, 1], [10, 15]]},
         with_zero_rows(normal(0.5, 1.0), 6 / 40)),
    case("uniform-keras-zero_rows", {"method": "uniform", "shape": [30, 20], "layout": "keras", "low": 1.0,
                                     "high": 3.0, "zero_rows": [[0, 3]]}, with_zero_rows(uniform(1.0, 3.0), 3 / 30)),
    case("eye-zero_rows-one-per-row", {"method": "eye", "shape": [4, 6], "zero_rows": [[1, 2]]}, EXACT),
    # subsampled (n > max_sample), with few and many bins
    case("subsample-normal", {"method": "normal", "shape": [300, 200], "seed": 11}, normal(0.0, 1.0),
         max_sample=4096, bins=7),
    case("subsample-xavier-keras", {"method": "xavier_uniform", "shape": [3, 3, 64, 32], "layout": "keras"},
         symmetric_uniform(S3 * math.sqrt(2 / (64 * 9 + 32 * 9))), max_sample=1000),
    case("subsample-orthogonal", {"method": "orthogonal", "shape": [64, 64]}, sphere(1.0, 64), max_sample=999),
    case("subsample-zero_rows-bfloat16", {"method": "normal", "shape": [400, 100], "std": 0.1, "dtype": "bfloat16",
                                          "zero_rows": [[0, 50]]}, with_zero_rows(normal(0.0, 0.1), 50 / 400),
         max_sample=3000, bins=50),
    case("subsample-trunc_normal", {"method": "trunc_normal", "shape": [100_000], "low": -1.0, "high": 3.0},
         truncated(0.0, 1.0, -1.0, 3.0), max_sample=5000, bins=1),
    case("subsample-eye", {"method": "eye", "shape": [200, 300]}, EXACT, max_sample=777),
]


# ---------------------------------------------------------------------------------- independent figures


def widen(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return np.asarray(values, dtype=np.float64)


def evenly(n: int, m: int) -> np.ndarray:
    """Flat indices ⌊k·n/m⌋, k = 0 … m−1, in exact integer arithmetic (all of them when n ≤ m)."""
    return np.array([k * n // m for k in range(m)] if n > m else list(range(n)), dtype=np.int64)


def canonical(values: np.ndarray, layout: str) -> np.ndarray:
    """[out, in, *kernel] from the torch layout (as is) or keras/jax [*kernel, in, out]."""
    ndim = values.ndim
    if layout == "torch" or ndim < 2:
        return values
    return values.transpose(ndim - 1, ndim - 2, *range(ndim - 2))


def from_canonical(values: np.ndarray, layout: str) -> np.ndarray:
    ndim = values.ndim
    if layout == "torch" or ndim < 2:
        return values
    return values.transpose(*range(2, ndim), 1, 0)


def stored(value: float, dtype: str) -> float:
    """``value`` as ``dtype`` holds it (the table's values are all exact in bfloat16)."""
    return float({"float16": np.float16, "float32": np.float32}.get(dtype, np.float64)(value))


def orthogonality(matrix: np.ndarray, gain: float, dtype: str, name: str) -> tuple[str, float, float]:
    rows, cols = matrix.shape
    gram = matrix.T @ matrix if rows >= cols else matrix @ matrix.T
    deviation = float(np.abs(gram - gain**2 * np.eye(min(rows, cols))).max())
    return name, deviation, 8 * EPS[dtype] * gain**2 * math.sqrt(max(rows, cols))


def expected_exact(spec: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
    """The exact tensor in canonical layout, before zero_rows (torch's eye_, dirac_, fill_)."""
    method = spec["method"]
    if method in ("zeros", "ones", "constant"):
        return np.full(shape, {"zeros": 0.0, "ones": 1.0}.get(method, spec.get("value")))
    if method == "eye":
        return spec.get("gain", 1.0) * np.eye(*shape)
    assert method == "dirac"
    tensor = np.zeros(shape)
    out_channels, in_channels, *kernel = shape
    groups = spec.get("groups", 1)
    per_group = out_channels // groups
    for g in range(groups):
        for d in range(min(per_group, in_channels)):
            tensor[(g * per_group + d, d, *(k // 2 for k in kernel))] = 1.0
    return tensor


def own_checks(spec: dict[str, Any], values: np.ndarray, law: Law) -> list[tuple[str, float, float]]:
    """(name, value, limit) of each check on the full stored tensor ``values`` (own layout): the method's, then
    that zeroed rows are zero."""
    zeroed = [("zero rows", float(sum(np.count_nonzero(values[start:stop]) for start, stop in spec["zero_rows"])),
               0.0)] if spec.get("zero_rows") else []
    return _method_checks(spec, values, law) + zeroed


def _method_checks(spec: dict[str, Any], values: np.ndarray, law: Law) -> list[tuple[str, float, float]]:
    method, dtype, layout = spec["method"], spec.get("dtype", "float32"), spec.get("layout", "torch")
    canon = canonical(values, layout)
    if method == "orthogonal":
        return [orthogonality(canon.reshape(canon.shape[0], -1), spec.get("gain", 1.0), dtype, "orthogonality")]
    if method == "delta_orthogonal":
        centre = (slice(None), slice(None), *((k - 1) // 2 for k in canon.shape[2:]))  # JAX's centre
        off = canon.copy()
        off[centre] = 0.0
        return [orthogonality(canon[centre], spec.get("gain", 1.0), dtype, "centre orthogonality"),
                ("zeros off centre", float(np.count_nonzero(off)), 0.0)]
    if method == "sparse":
        rows = canon.shape[0]
        per_column = (canon == 0.0).sum(axis=0)
        return [("zeros per column", float(np.abs(per_column - math.ceil(spec["sparsity"] * rows)).max()), 0.0)]
    if law.exact:
        expected = from_canonical(expected_exact(spec, canon.shape), layout).copy()
        for start, stop in spec.get("zero_rows", []):
            expected[start:stop] = 0.0
        expected = np.vectorize(lambda v: stored(v, dtype))(expected) if expected.size else expected
        return [("exact", float(np.count_nonzero(expected != values)), 0.0)]
    if law.variance == 0:
        return [("constant", float(np.count_nonzero(values != stored(law.mean, dtype))), 0.0)]
    return []


def approx(value: float, scale: float = 1.0) -> Any:
    return pytest.approx(value, rel=1e-9, abs=1e-12 * scale)


@pytest.mark.parametrize("item", CASES)
def test_every_figure_matches_an_independent_computation(item: Case) -> None:
    spec, law = item.spec, item.law
    tensor = resolve(**spec)
    report = tensor_statistics(tensor, bins=item.bins, max_sample=item.max_sample)

    full = widen(tensor.region(), tensor.dtype)
    n = full.size
    sample = full.ravel()[evenly(n, item.max_sample)]
    m = sample.size
    assert (report["n"], report["sample_size"]) == (n, min(n, item.max_sample))
    assert (report["name"], report["shape"], report["dtype"], report["method"]) == (
        spec.get("name", ""), spec["shape"], spec.get("dtype", "float32"), tensor.spec.method)
    assert isinstance(report["law"], str) and report["law"]

    # moments of the sample
    scale = float(np.abs(sample).max()) or 1.0
    mean = math.fsum(sample) / m
    deviations = sample - mean
    central = {p: math.fsum(deviations**p) / m for p in (2, 3, 4)}
    variance = central[2] * m / (m - 1)
    assert report["mean"] == approx(mean, scale)
    assert report["variance"] == approx(variance, scale * scale)
    assert report["std"] == approx(math.sqrt(variance), scale)
    assert (report["min"], report["max"]) == (sample.min(), sample.max())
    if central[2] > 0:
        skewness, kurtosis = central[3] / central[2] ** 1.5, central[4] / central[2] ** 2 - 3
        assert report["skewness"] == pytest.approx(skewness, rel=1e-9, abs=1e-9)
        assert report["excess_kurtosis"] == pytest.approx(kurtosis, rel=1e-9, abs=1e-9)
        assert report["skewness"] == pytest.approx(float(stats.skew(sample)), rel=1e-9, abs=1e-9)
        assert report["excess_kurtosis"] == pytest.approx(float(stats.kurtosis(sample)), rel=1e-9, abs=1e-9)
    else:
        assert report["skewness"] is None and report["excess_kurtosis"] is None

    # the theory: closed forms, or the exact tensor's own values
    theory = report["theory"]
    if law.exact:
        truth = Law(float(full.mean()), float(full.var()), float(full.min()), float(full.max()), exact=True)
    else:
        truth = law
    assert theory["exact"] is law.exact
    assert theory["mean"] == approx(truth.mean)
    assert theory["variance"] == approx(truth.variance)
    assert theory["std"] == approx(math.sqrt(truth.variance))
    assert (theory["low"], theory["high"]) == pytest.approx((truth.low, truth.high), rel=1e-12)

    # z, variance ratio and its interval, the KS fit
    verdicts = []
    if not law.exact and law.variance > 0 and m > 1:
        error = math.sqrt(law.variance / m)
        z_mean = (mean - law.mean) / error
        ratio = variance / law.variance
        kappa = law.kurtosis if law.kurtosis is not None else central[4] / central[2] ** 2 - 3
        half = Z * math.sqrt((kappa + 3 - (m - 3) / (m - 1)) / m)
        assert report["standard_error_mean"] == approx(error)
        assert report["z_mean"] == pytest.approx(z_mean, rel=1e-7, abs=1e-7)
        assert report["variance_ratio"] == approx(ratio)
        assert report["variance_ratio_interval"] == pytest.approx([ratio - half, ratio + half], rel=1e-9)
        verdicts += [abs(z_mean) <= Z, ratio - half <= 1 <= ratio + half]
        if law.cdf is None:
            assert report["fit"] is None
        else:
            fitted = sample[sample != 0.0] if law.zeros else sample
            fitted = fitted[evenly(fitted.size, FIT_SAMPLE)]
            ks = stats.kstest(fitted, law.cdf)
            fit = report["fit"]
            assert (fit["test"], fit["size"]) == ("kolmogorov_smirnov", fitted.size)
            assert fit["statistic"] == pytest.approx(float(ks.statistic), rel=1e-9, abs=1e-12)
            assert fit["p_value"] == pytest.approx(float(ks.pvalue), rel=1e-6, abs=1e-12)
            verdicts.append(ks.pvalue >= ALPHA)
    else:
        for key in ("standard_error_mean", "z_mean", "variance_ratio", "variance_ratio_interval", "fit"):
            assert report[key] is None, key

    # histogram: observed and expected counts (one degenerate bin when all values are equal)
    histogram = report["histogram"]
    if sample.min() == sample.max():
        assert histogram == {"edges": [sample[0]] * 2, "counts": [m], "expected": None}
        edges = np.array([])
    else:
        counts, edges = np.histogram(sample, bins=item.bins)
        assert histogram["counts"] == counts.tolist()
        assert histogram["edges"] == pytest.approx(edges.tolist(), rel=1e-12, abs=1e-15)
    if law.exact or law.cdf is None or not edges.size:
        assert histogram["expected"] is None
    else:
        mass = np.diff(law.cdf(edges)) * (1 - law.zeros)
        if law.zeros and edges[0] <= 0.0 <= edges[-1]:
            mass[np.histogram([0.0], bins=edges)[0].argmax()] += law.zeros
        assert histogram["expected"] == pytest.approx((mass * m).tolist(), rel=1e-7, abs=1e-7)
        assert sum(histogram["expected"]) == pytest.approx(m * (law.cdf(edges[-1]) - law.cdf(edges[0])) * (
            1 - law.zeros) + m * law.zeros * (edges[0] <= 0 <= edges[-1]), rel=1e-9)

    # method checks
    mine = own_checks(spec, full, law)
    theirs = report["checks"]
    assert [c["name"] for c in theirs] == [name for name, _, _ in mine]
    for check, (name, value, limit) in zip(theirs, mine, strict=True):
        assert check["value"] == pytest.approx(value, rel=1e-6, abs=1e-15), name
        assert check["limit"] == pytest.approx(limit, rel=1e-12), name
        assert check["passed"] is (value <= limit) is True, name
        assert isinstance(check["detail"], str) and check["detail"]
        verdicts.append(value <= limit)
    if law.exact or law.variance == 0:
        assert all(value == 0 for _, value, _ in mine)  # exact checks: no entry differs

    assert all(verdicts) and report["consistent"] is True


# ------------------------------------------------------------------------------------------- the subsample

SUBSAMPLED = [
    ({"method": "normal", "shape": [300, 200], "seed": 11}, 4096),
    ({"method": "xavier_uniform", "shape": [3, 3, 64, 32], "layout": "keras"}, 1000),
    ({"method": "uniform", "shape": [7, 11, 13], "layout": "jax", "dtype": "float16"}, 300),
    ({"method": "normal", "shape": [400, 100], "dtype": "bfloat16", "zero_rows": [[0, 50], [399, 400]]}, 3000),
    ({"method": "orthogonal", "shape": [64, 64]}, 999),
    ({"method": "eye", "shape": [200, 300], "layout": "keras"}, 777),
    ({"method": "dirac", "shape": [3, 3, 5, 10], "layout": "keras"}, 101),
    ({"method": "trunc_normal", "shape": [100_003], "low": -1.0, "high": 3.0}, 5000),
]


@pytest.mark.parametrize("spec,size", SUBSAMPLED, ids=lambda v: v["method"] if isinstance(v, dict) else str(v))
def test_the_subsample_is_the_elements_at_floor_k_n_over_m(spec: dict[str, Any], size: int) -> None:
    tensor = resolve(**spec)
    n = tensor.numel
    want = evenly(n, size)
    assert np.array_equal(sample_indices(n, size), want)
    assert np.array_equal(sample_indices(n, n + 5), np.arange(n))
    taken = tensor.take(want)
    assert taken.dtype == tensor.region().dtype
    assert np.array_equal(taken, tensor.region().ravel()[want])  # bit for bit, in the tensor's own layout
    report = tensor_statistics(tensor, bins=9, max_sample=size)
    sample = widen(tensor.region(), tensor.dtype).ravel()[want]
    assert report["sample_size"] == size and report["n"] == n
    assert (report["min"], report["max"]) == (sample.min(), sample.max())
    assert report["histogram"]["counts"] == np.histogram(sample, bins=9)[0].tolist()
    assert report["mean"] == pytest.approx(math.fsum(sample) / size, rel=1e-12, abs=1e-15)


def test_documented_constants() -> None:
    assert ALPHA == 1e-3
    assert Z_CRITICAL == pytest.approx(3.2905267314919255, rel=1e-12) and Z_CRITICAL == pytest.approx(Z, rel=1e-14)
    assert MAX_FIT_SAMPLE == FIT_SAMPLE and MAX_SAMPLE == 1 << 20 and DEFAULT_BINS == 20


@pytest.mark.parametrize("spec", [
    {"method": "uniform", "shape": [0]},
    {"method": "zeros", "shape": [0, 4]},
    {"method": "orthogonal", "shape": [3, 0]},
    {"method": "sparse", "shape": [3, 0], "sparsity": 0.5},
    {"method": "delta_orthogonal", "shape": [0, 0, 3]},
], ids=lambda s: f"{s['method']}-{s['shape']}")
def test_empty_tensors_have_no_figures(spec: dict[str, Any]) -> None:
    report = tensor_statistics(resolve(**spec))
    assert (report["n"], report["sample_size"]) == (0, 0)
    for key in ("mean", "variance", "std", "min", "max", "skewness", "excess_kurtosis", "z_mean", "fit"):
        assert report[key] is None, key
    assert report["histogram"] == {"edges": [], "counts": [], "expected": None}
    assert report["consistent"] is True


# ------------------------------------------------------------------------------------ the verdict can fail

NORMAL = {"method": "normal", "shape": [256, 256], "seed": 5}  # N(0, 1), 65 536 values


def verdicts(report: dict[str, Any]) -> tuple[bool, bool, bool | None]:
    """(z within ±Z, interval holds 1, fit p ≥ α or None without a fit), recomputed from the report."""
    low, high = report["variance_ratio_interval"]
    fit = report["fit"]
    return abs(report["z_mean"]) <= Z, low <= 1 <= high, None if fit is None else fit["p_value"] >= ALPHA


def test_the_normal_tensor_is_consistent_with_its_own_law() -> None:
    report = tensor_statistics(resolve(**NORMAL))
    assert verdicts(report) == (True, True, True) and report["consistent"] is True


def own_uniform_reference() -> Reference:
    return Reference(Theory(0.0, 1.0, -S3, S3), "U[-√3, √3] (test)", stats.uniform(-S3, 2 * S3).cdf, -1.2)


@pytest.mark.parametrize("reference", [
    pytest.param(lambda: reference_for(resolve("uniform", [256, 256], low=-S3, high=S3)), id="uniform-tensor-law"),
    pytest.param(own_uniform_reference, id="own-uniform-reference"),
])
def test_a_normal_tensor_judged_by_a_uniform_law_with_the_same_moments_fails_the_fit(reference: Any) -> None:
    report = tensor_statistics(resolve(**NORMAL), reference=reference())
    assert report["theory"]["variance"] == pytest.approx(1.0) and report["theory"]["mean"] == 0.0
    assert verdicts(report)[0] is True  # same mean: z passes
    assert report["fit"]["p_value"] < ALPHA  # the shape gives it away
    assert report["fit"]["statistic"] > 0.03
    assert report["consistent"] is False
    # the counts the wrong law expects are flat across its support, the observed ones are not
    expected = np.array(report["histogram"]["expected"])
    assert expected[0] == 0.0 and expected[-1] == 0.0  # beyond ±√3 a uniform law expects nothing


@pytest.mark.parametrize("with_cdf", [True, False], ids=["with-cdf", "moments-only"])
def test_a_mis_scaled_reference_fails_the_variance_interval(with_cdf: bool) -> None:
    std = 1.1  # theory std × 1.1
    reference = Reference(Theory(0.0, std * std, -INF, INF), "N(0, 1.1²)", normal_cdf(0.0, std) if with_cdf else None,
                          0.0)
    report = tensor_statistics(resolve(**NORMAL), reference=reference)
    high = report["variance_ratio_interval"][1]
    assert report["variance_ratio"] == pytest.approx(1 / 1.21, rel=0.02)
    assert high < 1.0  # the interval excludes 1
    z_ok, interval_ok, fit_ok = verdicts(report)
    assert z_ok and not interval_ok
    assert fit_ok is (False if with_cdf else None)
    assert report["consistent"] is False


def test_a_mean_shifted_reference_fails_z() -> None:
    shift = 0.05  # 12.8 standard errors of 1/256
    reference = Reference(Theory(shift, 1.0, -INF, INF), "N(0.05, 1)", None, 0.0)
    report = tensor_statistics(resolve(**NORMAL), reference=reference)
    assert report["standard_error_mean"] == pytest.approx(1 / 256)
    assert report["z_mean"] == pytest.approx((report["mean"] - shift) * 256)
    assert report["z_mean"] < -Z
    assert verdicts(report) == (False, True, None)
    assert report["consistent"] is False


def test_a_failing_orthogonality_check_fails_the_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {"method": "orthogonal", "shape": [64, 32], "dtype": "bfloat16"}
    passing = tensor_statistics(resolve(**spec))
    assert passing["consistent"] is True and passing["checks"][0]["passed"] is True
    deviation = passing["checks"][0]["value"]
    assert deviation > 0  # bfloat16 rounding leaves WᵀW slightly off gain²·I
    monkeypatch.setitem(checks_module.EPSILON, "bfloat16", 2.0**-40)  # a tiny limit
    report = tensor_statistics(resolve(**spec))
    (check,) = report["checks"]
    assert check["value"] == deviation and check["limit"] == pytest.approx(8 * 2.0**-40 * math.sqrt(64))
    assert check["passed"] is False
    assert verdicts(report) == (True, True, True)  # the laws pass: the check alone decides
    assert report["consistent"] is False


def test_a_check_passes_up_to_its_limit() -> None:
    assert Check("c", 1.0, 1.0, "").passed is True
    assert Check("c", 1.0 + 1e-15, 1.0, "").passed is False
    assert Check("c", 2.0, 0, "d").as_dict() == {"name": "c", "value": 2.0, "limit": 0, "passed": False,
                                                  "detail": "d"}


def test_an_exact_tensor_is_judged_by_its_checks_alone() -> None:
    """A wrong reference does not change an exact tensor's verdict; a constant law's check does fail."""
    eye = resolve("eye", [5, 5])
    wrong = Reference(Theory(7.0, 3.0, 7.0, 7.0, exact=True), "wrong")
    assert tensor_statistics(eye, reference=wrong)["consistent"] is True
    flat = resolve("normal", [5, 4], mean=0.25, std=0.0)
    assert tensor_statistics(flat)["consistent"] is True
    report = tensor_statistics(flat, reference=Reference(Theory(0.5, 0.0, -INF, INF), "constant 0.5"))
    assert report["checks"] == [{"name": "constant", "value": 20.0, "limit": 0, "passed": False,
                                 "detail": report["checks"][0]["detail"]}]
    assert report["consistent"] is False


# ------------------------------------------------------------------------------- thresholds at exactly ALPHA


def moments_reference(report: dict[str, Any], z: float = 0.0, variance_scale: float = 1.0,
                      cdf: Cdf | None = None) -> Reference:
    """A law whose mean sits ``z`` standard errors below the sample mean and whose variance is the sample's
    divided by ``variance_scale`` (κ = 0)."""
    variance = report["variance"] / variance_scale
    mean = report["mean"] - z * math.sqrt(variance / report["sample_size"])
    return Reference(Theory(mean, variance, -INF, INF), "test", cdf, 0.0)


@pytest.mark.parametrize("factor,consistent", [(1 - 1e-9, True), (1 + 1e-9, False)])
@pytest.mark.parametrize("sign", [1, -1])
def test_z_threshold(factor: float, consistent: bool, sign: int) -> None:
    tensor = resolve(**NORMAL)
    base = tensor_statistics(tensor)
    report = tensor_statistics(tensor, reference=moments_reference(base, sign * Z * factor))
    assert report["z_mean"] == pytest.approx(sign * Z * factor, rel=1e-12)
    assert report["variance_ratio"] == 1.0
    assert report["consistent"] is consistent


@pytest.mark.parametrize("factor,consistent", [(1 + 1e-9, True), (1 - 1e-9, False)])
def test_variance_interval_threshold(factor: float, consistent: bool) -> None:
    """Theory variance such that the interval's upper end sits just above (below) 1."""
    tensor = resolve(**NORMAL)
    base = tensor_statistics(tensor)
    m = base["sample_size"]
    half = Z * math.sqrt((3 - (m - 3) / (m - 1)) / m)  # κ = 0
    report = tensor_statistics(tensor, reference=moments_reference(base, variance_scale=(1 - half) * factor))
    assert report["variance_ratio"] == pytest.approx((1 - half) * factor, rel=1e-13)
    assert report["variance_ratio_interval"][1] == pytest.approx((1 - half) * factor + half, rel=1e-13)
    assert (report["variance_ratio_interval"][1] >= 1) is consistent
    assert report["consistent"] is consistent


def test_fit_threshold() -> None:
    """A normal law shifted so that the KS p-value crosses ALPHA: the verdict flips exactly there."""
    tensor = resolve("normal", [40, 50], seed=5)
    base = tensor_statistics(tensor)
    sample = widen(tensor.region(), "float32").ravel()

    def p_value(shift: float) -> float:
        return float(stats.kstest(sample, lambda x: special.ndtr(x - shift)).pvalue)

    shift = optimize.brentq(lambda s: math.log(p_value(s)) - math.log(ALPHA), 0.0, 0.5, xtol=1e-12)
    for nudge, consistent in ((1 - 1e-6, True), (1 + 1e-6, False)):
        reference = moments_reference(base, cdf=stats.norm(shift * nudge, 1.0).cdf)
        report = tensor_statistics(tensor, reference=reference)
        assert report["fit"]["p_value"] == pytest.approx(ALPHA, rel=1e-3)
        assert (report["fit"]["p_value"] >= ALPHA) is consistent
        assert report["consistent"] is consistent


# ----------------------------------------------------------------------------------------- found bugs


@pytest.mark.parametrize("spec", [
    {"method": "eye", "shape": [5, 3], "zero_rows": [[3, 5]]},  # rows 3, 4 hold no one: mean stays 3/15
    {"method": "dirac", "shape": [8, 2, 3], "zero_rows": [[0, 1]]},  # one of the two ones zeroed: mean 1/24
], ids=["eye", "dirac"])
def test_exact_theory_with_zero_rows_is_the_values_own(spec: dict[str, Any]) -> None:
    tensor = resolve(**spec)
    values = widen(tensor.region(), tensor.dtype)
    theory = tensor_statistics(tensor)["theory"]
    assert theory["exact"] is True
    assert (theory["mean"], theory["variance"]) == pytest.approx((values.mean(), values.var()), rel=1e-12)


@pytest.mark.parametrize("layout,shape", [("torch", [37, 29]), ("keras", [29, 37])])
def test_sparse_with_zero_rows_is_consistent(layout: str, shape: list[int]) -> None:
    tensor = resolve("sparse", shape, layout=layout, sparsity=0.3, std=0.02, zero_rows=[[0, 2]])
    report = tensor_statistics(tensor)
    assert report["checks"][0]["passed"] is True
    assert report["consistent"] is True


def test_reference_hooks_keep_the_tensor() -> None:
    """The hook changes the judge, never the values: every empirical figure is the same."""
    tensor = resolve(**NORMAL)
    own = tensor_statistics(tensor)
    other = tensor_statistics(tensor, reference=Reference(Theory(0.0, 4.0, -INF, INF), "N(0, 2²)",
                                                          uniform_cdf(-1, 1), 0.0))
    for key in ("n", "sample_size", "mean", "variance", "std", "min", "max", "skewness", "excess_kurtosis"):
        assert own[key] == other[key], key
    assert own["histogram"]["counts"] == other["histogram"]["counts"]
    assert other["law"] == "N(0, 2²)"



@pytest.mark.parametrize("spec", [
    {"method": "orthogonal", "shape": [0, 3]},
    {"method": "orthogonal", "shape": [0, 2, 2]},
    {"method": "delta_orthogonal", "shape": [3, 2, 0]},
], ids=lambda s: f"{s['method']}-{s['shape']}")
def test_empty_dense_tensors_have_no_figures(spec: dict[str, Any]) -> None:
    report = tensor_statistics(resolve(**spec))
    assert report["n"] == 0 and report["consistent"] is True


@pytest.mark.parametrize("spec", [
    {"method": "sparse", "shape": [4, 3], "sparsity": 1.0},
    {"method": "sparse", "shape": [1, 5], "sparsity": 0.1},  # ⌈0.1·1⌉ = 1 zero in each one-row column
    {"method": "normal", "shape": [4, 3], "zero_rows": [[0, 4]]},
    {"method": "xavier_uniform", "shape": [4, 3], "zero_rows": [[0, 4]]},
], ids=lambda s: f"{s['method']}-{s['shape']}")
def test_an_all_zero_law_is_summarised(spec: dict[str, Any]) -> None:
    tensor = resolve(**spec)
    assert not np.any(tensor.region())
    report = tensor_statistics(tensor)
    assert (report["mean"], report["variance"], report["theory"]["variance"]) == (0.0, 0.0, 0.0)
    assert report["consistent"] is True
