"""A slow reference of the orthogonal construction, in numpy elementwise operations, every sum in index order.

docs/determinism.md § 7 written as Python: tests compare the compiled ``_linalg`` module with it
bit for bit on small matrices. numpy's elementwise ``+ − × ÷ sqrt`` are correctly rounded and
never fused, so only the order of the sums matters, and each loop below fixes it.
"""

from __future__ import annotations

import numpy as np


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` with ``acc = 0; acc = acc + a[:, t] × b[t, :]`` for t in order (vectorised over outputs only)."""
    acc = np.zeros((a.shape[0], b.shape[1]))
    for t in range(a.shape[1]):
        acc = acc + a[:, t : t + 1] * b[t : t + 1, :]
    return acc


def squares_below_diagonal(g: np.ndarray) -> np.ndarray:
    """``t_k = Σ_{r>k} g[r, k]²`` over rows in order."""
    sums = np.zeros(g.shape[1])
    for r in range(1, g.shape[0]):
        width = min(r, g.shape[1])
        sums[:width] = sums[:width] + g[r, :width] * g[r, :width]
    return sums


def triangular_factor(v: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """T with ``I − V T Vᵀ = H_0 ⋯ H_{b−1}``: ``T[i, a] = −(τ_a × Σ_{l<a} T[i, l] S[l, a])``, ``S = Vᵀ V``."""
    b = v.shape[1]
    s = matmul(v.T, v)
    t = np.zeros((b, b))
    for a in range(b):
        t[a, a] = tau[a]
        w = np.zeros(a)
        for col in range(a):
            w = w + t[:a, col] * s[col, a]
        t[:a, a] = -(tau[a] * w)
    return t


def orthonormal_columns(g: np.ndarray, nb: int) -> np.ndarray:
    """Q of :func:`initserve.core.linalg.orthonormal_columns` with blocks of ``nb`` reflectors."""
    m, n = g.shape
    below = squares_below_diagonal(g)
    x0 = np.diagonal(g)
    s = np.where(x0 < 0, 1.0, -1.0)
    v0 = x0 - s * np.sqrt(x0 * x0 + below)
    tau = 2.0 / (v0 * v0 + below)
    q = np.zeros((m, n))
    q[np.arange(n), np.arange(n)] = s
    for j in reversed(range(0, n, nb)):
        b = min(nb, n - j)
        v = np.tril(g[j:, j : j + b], -1)
        v[np.arange(b), np.arange(b)] = v0[j : j + b]
        y = matmul(triangular_factor(v, tau[j : j + b]), matmul(v.T, q[j:, j:]))
        q[j:, j:] = q[j:, j:] - matmul(v, y)
    return q
