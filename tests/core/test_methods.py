"""Every method: shape, dtype, support, moments against theory, structure, and torch's semantics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from initserve.core import SpecError, resolve
from initserve.core.plans import Sampled

from .conftest import SPEC_CASES

DTYPES = ["float32", "float64", "float16", "bfloat16"]


def as_float(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (values.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return values.astype(np.float64)


@pytest.mark.parametrize("method,params,shape", SPEC_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_shape_dtype_and_support(method: str, params: dict[str, Any], shape: tuple[int, ...], dtype: str) -> None:
    tensor = resolve(method, list(shape), dtype=dtype, **params)
    values = tensor.region()
    assert values.shape == shape
    assert values.dtype == {"float32": "<f4", "float64": "<f8", "float16": "<f2", "bfloat16": "<u2"}[dtype]
    theory = tensor.theory
    x = as_float(values, dtype)
    if x.size:
        slack = 1e-2 * max(abs(theory.low), abs(theory.high), 1.0) if dtype in ("float16", "bfloat16") else 1e-6
        assert x.min() >= theory.low - slack and x.max() <= theory.high + slack


@pytest.mark.parametrize("method,params,shape", [c for c in SPEC_CASES if math.prod(c[2]) > 0])
def test_mean_and_variance_match_theory(method: str, params: dict[str, Any], shape: tuple[int, ...]) -> None:
    big = tuple(n * 4 if i < 2 else n for i, n in enumerate(shape)) if len(shape) >= 2 else (shape[0] * 50,) if shape else ()
    tensor = resolve(method, list(big), dtype="float64", **params)
    x = tensor.region().ravel()
    theory = tensor.theory
    if theory.exact:
        assert x.mean() == pytest.approx(theory.mean, abs=1e-12)
        assert x.var() == pytest.approx(theory.variance, abs=1e-12)
        return
    n = x.size
    se_mean = math.sqrt(theory.variance / n)
    assert abs(x.mean() - theory.mean) < 5 * se_mean + 1e-12
    if isinstance(tensor.plan, Sampled):
        fourth = np.mean((x - theory.mean) ** 4)
        se_var = math.sqrt(max(fourth - theory.variance**2, 0.0) / n)
        assert abs(x.var() - theory.variance) < 5 * se_var + 1e-12
    else:  # orthogonal / sparse / delta: structural, variance is exact up to rounding or known count
        assert x.var() == pytest.approx(theory.variance, rel=0.05)


def test_moments_check_can_fail() -> None:
    """The statistical check above rejects a law that is off by 5% in std."""
    x = resolve("normal", [200_000], dtype="float64", std=1.05).region()
    se_var = math.sqrt(2.0 / x.size)
    assert abs(x.var() - 1.0) > 5 * se_var


@pytest.mark.parametrize("shape", [(37, 29), (20, 45), (8, 3, 3, 3), (64, 64)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape: tuple[int, ...]) -> None:
    w = resolve("orthogonal", list(shape), dtype="float64", gain=1.5).region().reshape(shape[0], -1)
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    assert np.abs(gram - 1.5**2 * np.eye(gram.shape[0])).max() < 1e-12


def test_sparse_zeroes_ceil_sparsity_rows_in_every_column() -> None:
    w = resolve("sparse", [37, 29], sparsity=0.3).region()
    assert ((w == 0).sum(axis=0) == math.ceil(0.3 * 37)).all()
    assert len({tuple(np.flatnonzero(w[:, c] == 0)) for c in range(29)}) > 20  # different rows per column


def test_seed_and_name_change_the_values() -> None:
    base = resolve("normal", [64]).region()
    assert not np.array_equal(base, resolve("normal", [64], seed=1).region())
    assert not np.array_equal(base, resolve("normal", [64], name="fc.weight").region())
    assert np.array_equal(base, resolve("random_normal", [64]).region())


def test_linear_default_kaiming_bound_is_one_over_sqrt_fan_in() -> None:
    tensor = resolve("kaiming_uniform", [30, 50], dtype="float64", negative_slope=math.sqrt(5))
    assert isinstance(tensor.plan, Sampled)
    assert tensor.plan.distribution.high == pytest.approx(1 / math.sqrt(50), rel=1e-15)


def test_truncated_variants_follow_keras() -> None:
    t = resolve("kaiming_normal", [100, 200], truncated=True)
    law = t.plan.distribution  # type: ignore[union-attr]
    std = math.sqrt(2.0) / math.sqrt(200) / 0.87962566103423978
    assert (law.std, law.low, law.high) == pytest.approx((std, -2 * std, 2 * std))
    assert t.theory.variance == pytest.approx(2.0 / 200, rel=1e-12)


def test_trunc_normal_bounds_in_std_units() -> None:
    law = resolve("trunc_normal", [10], mean=1.0, std=2.0, low=-1.0, high=1.5, bounds="std").plan.distribution  # type: ignore[union-attr]
    assert (law.low, law.high) == (-1.0, 4.0)


@pytest.mark.parametrize(
    "method,shape,params,field",
    [
        ("nope", [3, 3], {}, "method"),
        ("normal", [3, -1], {}, "shape"),
        ("normal", [3, 2.5], {}, "shape"),
        ("normal", [3], {"std": -1.0}, "std"),
        ("normal", [3], {"std": float("nan")}, "std"),
        ("normal", [3], {"mean": float("inf")}, "mean"),
        ("normal", [3], {"stddev": 0.1}, "stddev"),
        ("uniform", [3], {"low": 1.0, "high": 1.0}, "high"),
        ("xavier_uniform", [5], {}, "shape"),
        ("xavier_uniform", [5, 5], {"nonlinearity": "relu6"}, "nonlinearity"),
        ("xavier_uniform", [5, 5], {"nonlinearity": "relu", "gain": 2.0}, "gain"),
        ("sparse", [3, 3, 3], {"sparsity": 0.1}, "shape"),
        ("sparse", [3, 3], {}, "sparsity"),
        ("eye", [3, 3, 3], {}, "shape"),
        ("dirac", [3, 3], {}, "shape"),
        ("dirac", [6, 3, 3], {"groups": 4}, "groups"),
        ("delta_orthogonal", [2, 4, 3], {}, "shape"),
        ("kaiming_normal", [4, 4], {"mode": "fan_avg"}, "mode"),
        ("trunc_normal", [4], {"low": 40.0, "high": 41.0}, "low"),
        ("constant", [4], {"value": True}, "value"),
        ("uniform", [3], {"low": -1e308, "high": 1e308}, "low"),  # high − low overflows
        ("normal", [3], {"std": 1e38}, "std"),  # ±8.3e38 is beyond float32
        ("orthogonal", [4, 4], {"gain": 1e200}, "gain"),
        ("eye", [3, 3], {"gain": 1e300}, "gain"),
        ("sparse", [4, 4], {"sparsity": 0.5, "std": 1e300}, "std"),
        ("xavier_uniform", [4, 4], {"gain": 1e308}, "gain"),
    ],
)
def test_bad_specs_name_the_field(method: str, shape: Any, params: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve(method, shape, **params)
    assert info.value.field == field


def test_range_check_depends_on_dtype_and_accepts_extreme_but_finite_laws() -> None:
    with pytest.raises(SpecError) as info:
        resolve("normal", [3], dtype="float16", std=1e4)
    assert info.value.field == "std" and "float16" in info.value.message
    assert np.isfinite(resolve("normal", [1000], dtype="float64", std=1e300).region()).all()
    assert np.isfinite(resolve("kaiming_uniform", [4, 4], negative_slope=1e200).region()).all()  # gain → 0


@pytest.mark.parametrize("field,value", [("seed", -1), ("seed", 2**64), ("dtype", "int8"), ("layout", "tf")])
def test_bad_common_fields(field: str, value: Any) -> None:
    with pytest.raises(SpecError) as info:
        resolve("normal", [3], **{field: value})
    assert info.value.field == field and info.value.value == value


# --- PyTorch as the oracle --------------------------------------------------------------

torch_cases = [((30, 50), {}), ((64, 32, 3, 3), {"mode": "fan_out"}), ((16, 8, 5), {"nonlinearity": "relu"}),
               ((10, 20), {"negative_slope": 0.2}), ((12, 7, 2, 2, 2), {"nonlinearity": "tanh"})]


@pytest.mark.parametrize("shape,params", torch_cases)
def test_kaiming_and_xavier_bounds_and_stds_equal_torch(shape: tuple[int, ...], params: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    t = torch.empty(shape)
    mode = params.get("mode", "fan_in")
    nonlinearity = params.get("nonlinearity", "leaky_relu")
    slope = params.get("negative_slope", 0.0)
    fan = torch.nn.init._calculate_correct_fan(t, mode)
    std = torch.nn.init.calculate_gain(nonlinearity, slope) / math.sqrt(fan)
    ours = resolve("kaiming_normal", list(shape), **params).plan.distribution  # type: ignore[union-attr]
    assert ours.std == std
    ours_u = resolve("kaiming_uniform", list(shape), **params).plan.distribution  # type: ignore[union-attr]
    assert ours_u.high == math.sqrt(3.0) * std
    torch.manual_seed(0)
    sample = torch.nn.init.kaiming_uniform_(torch.empty(shape), a=slope, mode=mode, nonlinearity=nonlinearity)
    assert float(sample.abs().max()) <= ours_u.high
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(t)
    xavier = resolve("xavier_normal", list(shape), gain=1.7).plan.distribution  # type: ignore[union-attr]
    assert xavier.std == 1.7 * math.sqrt(2.0 / float(fan_in + fan_out))


@pytest.mark.parametrize("shape,groups", [((8, 4, 3), 1), ((6, 3, 3, 3), 2), ((4, 2, 2, 2, 2), 2), ((3, 5, 4, 4), 3)])
def test_dirac_equals_torch(shape: tuple[int, ...], groups: int) -> None:
    torch = pytest.importorskip("torch")
    expected = torch.nn.init.dirac_(torch.empty(shape), groups=groups).numpy()
    assert np.array_equal(resolve("dirac", list(shape), groups=groups).region(), expected)


@pytest.mark.parametrize("shape", [(7, 9), (9, 7), (4, 4)])
def test_eye_equals_torch(shape: tuple[int, int]) -> None:
    torch = pytest.importorskip("torch")
    assert np.array_equal(resolve("eye", list(shape)).region(), torch.nn.init.eye_(torch.empty(shape)).numpy())


@pytest.mark.parametrize("shape", [(37, 29), (20, 45), (8, 3, 3, 3)])
def test_orthogonal_first_vector_equals_torch_qr_of_the_same_gaussian(shape: tuple[int, ...]) -> None:
    """torch's recipe (QR, then Q·sign(diag R)) on our Gaussian: the first column (row if rows < cols) is the same.

    The later ones are not: Stewart's construction draws each reflector from fresh Gaussian numbers
    instead of the updated matrix, which changes the matrix but not its law (see the next tests).
    """
    torch = pytest.importorskip("torch")
    rows, cols = shape[0], math.prod(shape[1:])
    gaussian = resolve("normal", [rows, cols], dtype="float64").region()
    flat = torch.from_numpy(gaussian)
    if rows < cols:
        flat = flat.T
    q, r = torch.linalg.qr(flat)
    q = (q * torch.diag(r).sign()).numpy()
    ours = resolve("orthogonal", list(shape), dtype="float64").region().reshape(rows, cols)
    if rows < cols:
        ours = ours.T
    assert np.abs(ours[:, 0] - q[:, 0]).max() < 1e-14
    assert np.abs(ours[:, 1:] - q[:, 1:]).max() > 1e-3


def orthogonal_samples(shape: tuple[int, int], count: int) -> np.ndarray:
    return np.array([resolve("orthogonal", list(shape), dtype="float64", seed=s).region() for s in range(count)])


def haar_statistics(q: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of a sample of matrices whose law under the Haar measure is free of any sign convention."""
    scale = math.sqrt(max(q.shape[1:]))
    n = min(q.shape[1:])
    result = {"trace": np.trace(q[:, :n, :n], axis1=1, axis2=2), "first": q[:, 0, 0] * scale,
              "last": q[:, -1, -1] * scale, "inner": q[:, 1, 2] * scale}
    if q.shape[1] == q.shape[2]:
        result["det"] = np.linalg.det(q)
    return result


def test_orthogonal_is_haar_distributed() -> None:
    """For Haar O(n): E[tr Q] = 0, E[(tr Q)²] = 1, det Q = ±1 with probability ½ each, E[Q_ij²] = 1/n.

    A wrong sign rule fails these at once (LAPACK's Q without sign(diag R) has E[tr Q] ≈ −0.8·√n and a fixed det).
    """
    count, n = 4000, 6
    q = orthogonal_samples((n, n), count)
    stats = haar_statistics(q)
    assert abs(stats["trace"].mean()) < 5 / math.sqrt(count)
    assert abs((stats["trace"] ** 2).mean() - 1.0) < 5 * math.sqrt(2.0 / count)
    assert np.allclose(np.abs(stats["det"]), 1.0) and abs(stats["det"].mean()) < 5 / math.sqrt(count)
    variance = 2.0 * (n - 1) / (n * n * (n + 2))  # Q_ij² ~ Beta(1/2, (n − 1)/2)
    assert np.abs((q * q).mean(axis=0) - 1.0 / n).max() < 5 * math.sqrt(variance / count)


@pytest.mark.parametrize("shape", [(6, 6), (7, 3), (3, 7)])
def test_orthogonal_has_the_law_of_torch(shape: tuple[int, int]) -> None:
    """Two-sample Kolmogorov–Smirnov tests against torch.nn.init.orthogonal_ (seeded, so not flaky)."""
    torch = pytest.importorskip("torch")
    from scipy import stats

    count = 2000
    torch.manual_seed(0)
    theirs = np.array([torch.nn.init.orthogonal_(torch.empty(shape, dtype=torch.float64)).numpy()
                       for _ in range(count)])
    ours, reference = haar_statistics(orthogonal_samples(shape, count)), haar_statistics(theirs)
    for name in ours:
        assert stats.ks_2samp(ours[name], reference[name]).pvalue > 1e-3, name


def test_sparse_zero_count_equals_torch() -> None:
    torch = pytest.importorskip("torch")
    theirs = torch.nn.init.sparse_(torch.empty(37, 29), sparsity=0.3).numpy()
    ours = resolve("sparse", [37, 29], sparsity=0.3).region()
    assert np.array_equal((ours == 0).sum(axis=0), (theirs == 0).sum(axis=0))
