"""The compiled products against the in-order reference, and the orthonormal columns built from them."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import numpy as np
import pytest

from initserve.core import deadline, linalg, resolve
from initserve.core.deadline import DeadlineExceeded

from . import linalg_reference as reference

_linalg = linalg.compiled()
SIZES = [1, 3, 7, 13, 130]


@pytest.fixture(params=_linalg.simd_builds())
def simd(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test under each SIMD build this CPU supports."""
    before = _linalg.simd()
    _linalg.set_simd(request.param)
    try:
        yield request.param
    finally:
        _linalg.set_simd(before)


def gaussian(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.mark.parametrize("p", SIZES)
@pytest.mark.parametrize("k", [1, 7, 300])
@pytest.mark.parametrize("q", SIZES)
def test_matmul_is_the_in_order_sum(simd: str, p: int, k: int, q: int) -> None:
    a, b = gaussian(p * 1000 + k, p, k), gaussian(q * 1000 + k, k, q)
    expected = reference.matmul(a, b)
    for threads in (1, 2, 3):
        out = np.full((p, q), np.nan)
        _linalg.matmul(a, b, out, threads=threads)
        assert np.array_equal(out, expected)
        start = gaussian(1, p, q)
        _linalg.matmul(a, b, start, subtract=True, threads=threads)
        assert np.array_equal(start, gaussian(1, p, q) - expected)


def test_matmul_of_non_contiguous_panels(simd: str) -> None:
    """Strided, transposed and Fortran-ordered operands; the output a panel of a larger matrix."""
    big = gaussian(2, 300, 400)
    a = big[3:263:2, 5:391:3]  # 130 × 129, both strides
    b = np.asfortranarray(gaussian(3, 129, 37))
    out_parent = np.zeros((140, 60))
    out = out_parent[5:135, 11:48]
    _linalg.matmul(a, b, out, threads=2)
    assert np.array_equal(out, reference.matmul(a, b))
    assert not out_parent[:5].any() and not out_parent[:, :11].any() and not out_parent[:, 48:].any()
    _linalg.matmul(a.T[:37], a, out_t := np.empty((37, 129)))
    assert np.array_equal(out_t, reference.matmul(a.T[:37], a))


def test_matmul_of_empty_shapes() -> None:
    out = np.full((3, 4), 7.0)
    _linalg.matmul(np.zeros((3, 0)), np.zeros((0, 4)), out)
    assert not out.any()
    out = np.full((3, 4), 7.0)
    _linalg.matmul(np.zeros((3, 0)), np.zeros((0, 4)), out, subtract=True)
    assert (out == 7.0).all()
    _linalg.matmul(np.ones((0, 5)), np.ones((5, 2)), np.empty((0, 2)))
    _linalg.matmul(np.ones((2, 5)), np.ones((5, 0)), np.empty((2, 0)))


def test_matmul_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="do not match"):
        _linalg.matmul(np.ones((2, 3)), np.ones((4, 2)), np.empty((2, 2)))
    with pytest.raises(ValueError, match="float64"):
        _linalg.matmul(np.ones((2, 3), np.float32), np.ones((3, 2)), np.empty((2, 2)))
    with pytest.raises(ValueError, match="contiguous rows"):
        _linalg.matmul(np.ones((2, 3)), np.ones((3, 2)), np.empty((2, 4))[:, ::2])
    with pytest.raises(ValueError, match="tau of length b"):
        _linalg.reflect_block(np.zeros((3, 3)), np.zeros((3, 2)), np.zeros(3))


@pytest.mark.parametrize(("m", "n"), [(1, 1), (7, 3), (13, 13), (130, 70)])
def test_squares_below_diagonal(m: int, n: int) -> None:
    g = gaussian(m + n, m, n)
    for layout in (g, np.asfortranarray(g)):
        out = np.empty(n)
        _linalg.squares_below_diagonal(layout, out)
        assert np.array_equal(out, reference.squares_below_diagonal(g))


@pytest.mark.parametrize(("m", "n", "b"), [(1, 1, 1), (7, 5, 3), (13, 13, 13), (130, 100, 64), (150, 140, 96)])
def test_reflect_block_is_the_reference(simd: str, m: int, n: int, b: int) -> None:
    """Q −= V (T (Vᵀ Q)) on a Q shaped as in the accumulation, against the reference and against H_0 ⋯ H_{b−1}."""
    v = np.tril(gaussian(m, m, b))
    tau = 2.0 / np.einsum("ij,ij->j", v, v)
    t = reference.triangular_factor(v, tau)
    product = np.eye(m)
    for a in range(b):
        product = product @ (np.eye(m) - tau[a] * np.outer(v[:, a], v[:, a]))
    assert np.abs(np.eye(m) - v @ t @ v.T - product).max() < 1e-13
    q = gaussian(5, m, n)  # the block's own columns are E's, the later ones zero in the block's rows
    q[:, :b] = 0.0
    q[:b, b:] = 0.0
    q[range(b), range(b)] = np.where(gaussian(6, b) < 0, 1.0, -1.0)
    expected = q - reference.matmul(v, reference.matmul(t, reference.matmul(v.T, q)))
    for threads in (1, 2, 3):
        updated = q.copy()
        _linalg.reflect_block(updated, v, tau, threads)
        assert np.array_equal(updated, expected)


@pytest.mark.parametrize(("m", "n", "nb"), [(1, 1, 64), (3, 3, 64), (7, 3, 2), (13, 13, 4), (40, 33, 8),
                                            (130, 70, 64), (150, 140, 64)])
def test_orthonormal_columns_is_the_reference(simd: str, monkeypatch: pytest.MonkeyPatch, m: int, n: int,
                                              nb: int) -> None:
    monkeypatch.setattr(linalg, "NB", nb)
    g = gaussian(m * n, m, n)
    assert np.array_equal(linalg.orthonormal_columns(g), reference.orthonormal_columns(g, nb))


@pytest.mark.parametrize("shape", [(1, 1), (9, 1), (17, 17), (40, 33), (300, 200), (2000, 70), (257, 257)])
def test_orthonormal_columns_are_orthonormal(shape: tuple[int, int]) -> None:
    q = linalg.orthonormal_columns(gaussian(shape[0] * shape[1], *shape))
    assert q.shape == shape
    assert np.abs(q.T @ q - np.eye(shape[1])).max() < 1e-13


def test_first_column_is_the_normalised_gaussian_column() -> None:
    """Q[:, 0] = G[:, 0] / ‖G[:, 0]‖, as in torch's Q·sign(diag R); later columns use G[k:, k] only."""
    g = gaussian(4, 50, 20)
    q = linalg.orthonormal_columns(g)
    assert np.abs(q[:, 0] - g[:, 0] / np.linalg.norm(g[:, 0])).max() < 1e-15
    changed = g.copy()
    changed[np.triu_indices(20, 1)] = 7.0  # the upper triangle is not used
    assert np.array_equal(linalg.orthonormal_columns(changed), q)


def test_orthonormal_columns_is_a_fixed_function_of_its_input() -> None:
    g = gaussian(0, 120, 90)
    expected = digest(linalg.orthonormal_columns(g))
    assert digest(linalg.orthonormal_columns(np.asfortranarray(g))) == expected
    for threads in (1, 2, 3, 5):
        assert digest(linalg.orthonormal_columns(g, threads)) == expected


def test_every_simd_build_and_thread_count_gives_the_same_orthogonal_tensor() -> None:
    before = _linalg.simd()
    seen = set()
    try:
        for build in _linalg.simd_builds():
            _linalg.set_simd(build)
            for threads in (1, 2, 3):
                q = linalg.orthonormal_columns(gaussian(9, 333, 200), threads)
                seen.add(digest(q))
                seen.add(digest(resolve("orthogonal", [150, 390], dtype="float64", seed=5).region()))
    finally:
        _linalg.set_simd(before)
    assert len(seen) == 2


def test_rows_must_not_be_fewer_than_columns() -> None:
    with pytest.raises(ValueError, match="rows >= columns"):
        linalg.orthonormal_columns(np.ones((3, 4)))


def test_every_block_checks_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(deadline, "check", lambda: calls.append(1))
    linalg.orthonormal_columns(gaussian(1, 300, 300))
    assert len(calls) == -(-300 // linalg.NB)


def test_a_passed_time_limit_stops_it() -> None:
    with deadline.limit(time.monotonic() - 1.0, 0.5), pytest.raises(DeadlineExceeded):
        linalg.orthonormal_columns(gaussian(1, 300, 300))


def test_missing_extension_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linalg, "_compiled", None)
    with pytest.raises(RuntimeError, match="initserve.core._linalg"):
        linalg.orthonormal_columns(np.ones((3, 3)))
