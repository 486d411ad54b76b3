"""The exact BLAS products and the blocked Gram–Schmidt built on them.

The BLAS variations (thread count, OpenBLAS core type) run in fresh processes:
OpenBLAS reads ``OPENBLAS_NUM_THREADS`` and ``OPENBLAS_CORETYPE`` at load time.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from initserve.core import linalg

BLAS_SETTINGS = {
    "1 thread, Haswell": {"OPENBLAS_NUM_THREADS": "1", "OPENBLAS_CORETYPE": "Haswell"},
    "2 threads, Haswell": {"OPENBLAS_NUM_THREADS": "2", "OPENBLAS_CORETYPE": "Haswell"},
    "1 thread, Prescott (SSE3)": {"OPENBLAS_NUM_THREADS": "1", "OPENBLAS_CORETYPE": "Prescott"},
    "2 threads, Nehalem": {"OPENBLAS_NUM_THREADS": "2", "OPENBLAS_CORETYPE": "Nehalem"},
    "2 threads, Sandybridge, baseline numpy": {
        "OPENBLAS_NUM_THREADS": "2",
        "OPENBLAS_CORETYPE": "Sandybridge",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    },
}

PROGRAM = """
import hashlib, json
import numpy as np
from initserve.core import linalg, resolve
r = np.random.default_rng(7)
x, y = r.standard_normal((150, 3000)), r.standard_normal((3000, 90))
h = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
print(json.dumps({
    "plain": h(x @ y),
    "exact": h(linalg.exact_matmul(x, y)),
    "q": h(linalg.orthonormal_columns(r.standard_normal((700, 300)))),
    "orthogonal": h(resolve("orthogonal", [200, 600], dtype="float64").region()),
}))
"""


def run(env_extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def blas_digests() -> dict[str, dict[str, str]]:
    return {name: run(env) for name, env in BLAS_SETTINGS.items()}


def test_results_do_not_depend_on_blas_threads_or_kernels(blas_digests: dict[str, dict[str, str]]) -> None:
    for key in ("exact", "q", "orthogonal"):
        assert len({d[key] for d in blas_digests.values()}) == 1, key


def test_plain_blas_products_do_differ_between_these_settings(blas_digests: dict[str, dict[str, str]]) -> None:
    """The settings above are different BLAS code paths: a plain x @ y changes bits between them."""
    assert len({d["plain"] for d in blas_digests.values()}) > 1


def integer_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact product of integer-valued doubles via int64 (|entries| ≤ 2^53, so no overflow)."""
    assert np.array_equal(a, np.rint(a)) and np.array_equal(b, np.rint(b))
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.float64)


def reversed_loop_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise numpy, summing the inner index backwards: another order, same exact result."""
    total = np.zeros((a.shape[0], b.shape[1]))
    for t in reversed(range(a.shape[1])):
        total = total + a[:, t : t + 1] * b[t : t + 1, :]
    return total


def random_pair(seed: int, p: int, k: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian factors with rows / columns scaled over many orders of magnitude, some zero."""
    r = np.random.default_rng(seed)
    x = r.standard_normal((p, k)) * np.exp2(r.integers(-60, 60, (p, 1)))
    y = r.standard_normal((k, q)) * np.exp2(r.integers(-60, 60, (1, q)))
    x[0] = 0.0
    y[:, -1] = 0.0
    return x, y


@pytest.mark.parametrize("k", [1, 2, 3, 37, 1000, 4096])
def test_split_is_exact_with_integer_slices(k: int) -> None:
    x, _ = random_pair(k, 4, k, 1)
    beta, s = linalg.split_parameters(k)
    assert 2 * beta + (k - 1).bit_length() <= 53 and s * beta >= 56
    exponent, slices = linalg.split_rows(x, beta, s)
    for piece in slices:
        assert np.array_equal(piece, np.rint(piece)) and np.abs(piece).max() <= 2.0**beta
    for r in range(x.shape[0]):
        scale = Fraction(2) ** int(exponent[r, 0])
        for c in range(min(k, 50)):
            approx = scale * sum(
                Fraction(float(sl[r, c])) * Fraction(2) ** (-i * beta) for i, sl in enumerate(slices, 1)
            )
            assert abs(approx - Fraction(float(x[r, c]))) <= scale * Fraction(2) ** (-s * beta - 1)


@pytest.mark.parametrize(("p", "k", "q"), [(1, 1, 1), (5, 3, 4), (30, 257, 20), (20, 4096, 12)])
def test_slice_products_are_exact_in_any_order(p: int, k: int, q: int) -> None:
    x, y = random_pair(p * k * q, p, k, q)
    for full in (True, False):
        blas = linalg.exact_matmul(x, y, full)
        assert np.array_equal(blas, linalg.exact_matmul(x, y, full, matmul=integer_matmul))
        if k <= 257:
            assert np.array_equal(blas, linalg.exact_matmul(x, y, full, matmul=reversed_loop_matmul))


def test_slice_products_at_the_integer_bound() -> None:
    """First slices all ±2^β with k = 2^12: partial sums reach k · 2^2β = 2^52 and must stay exact."""
    k = 4096
    beta, _ = linalg.split_parameters(k)
    x = np.full((3, k), 1.0 - 2.0**-30)
    x[1, ::2] *= -1
    result = linalg.exact_matmul(x, x.T.copy())
    assert linalg.split_rows(x, *linalg.split_parameters(k))[1][0].max() == 2.0**beta
    assert np.array_equal(result, linalg.exact_matmul(x, x.T.copy(), matmul=integer_matmul))
    assert result[0, 0] == k * (1.0 - 2.0**-30) ** 2 and result[0, 1] == 0.0


def test_exact_matmul_is_accurate() -> None:
    x, y = random_pair(3, 6, 300, 5)
    result = linalg.exact_matmul(x, y)
    for i in range(x.shape[0]):
        for j in range(y.shape[1]):
            exact = sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(x[i], y[:, j], strict=True))
            norms = float(np.linalg.norm(x[i]) * np.linalg.norm(y[:, j]))
            assert abs(float(Fraction(float(result[i, j])) - exact)) <= 2.0**-53 * norms


def test_exact_matmul_of_empty_shapes() -> None:
    assert linalg.exact_matmul(np.zeros((3, 0)), np.zeros((0, 4))).tolist() == np.zeros((3, 4)).tolist()
    assert linalg.exact_matmul(np.zeros((0, 5)), np.ones((5, 2))).shape == (0, 2)
    assert linalg.exact_matmul(np.ones((2, 5)), np.ones((5, 0))).shape == (2, 0)


@pytest.mark.parametrize("shape", [(5, 0), (1, 1), (9, 1), (17, 17), (40, 33), (300, 200), (4096, 16), (2000, 70)])
def test_orthonormal_columns_is_the_positive_qr(shape: tuple[int, int]) -> None:
    a = np.random.default_rng(shape[0] * shape[1]).standard_normal(shape)
    q = linalg.orthonormal_columns(a)
    assert q.shape == shape
    reference, r = np.linalg.qr(a)
    reference = reference * np.sign(np.diag(r))
    assert np.abs(q - reference).max(initial=0.0) < 1e-10
    assert np.abs(q.T @ q - np.eye(shape[1])).max(initial=0.0) < 1e-13


def test_orthonormal_columns_is_a_fixed_function_of_its_input() -> None:
    a = np.random.default_rng(0).standard_normal((120, 90))
    digest = hashlib.sha256(linalg.orthonormal_columns(a).tobytes()).hexdigest()
    assert hashlib.sha256(linalg.orthonormal_columns(np.asfortranarray(a)).tobytes()).hexdigest() == digest
