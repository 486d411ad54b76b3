"""Deterministic orthonormalisation (the QR step of orthogonal initialisation).

LAPACK/BLAS results depend on the CPU kernel, blocking and thread count, so
they cannot be used. Instead: classical Gram–Schmidt with one
re-orthogonalisation ("twice is enough", Giraud et al., Numer. Math. 2005),
where every inner product is summed by :func:`tree_sum` in a fixed pairwise
order using only elementwise + and *. The result is the Q factor of the thin QR
decomposition with a positive diagonal in R — the matrix PyTorch's
``orthogonal_`` obtains by multiplying LAPACK's Q by ``sign(diag(R))``.
"""

from __future__ import annotations

import numpy as np


def tree_sum(a: np.ndarray) -> np.ndarray:
    """Sum over axis 0 in a fixed order: fold the upper half of the rows onto the lower half.

    With ``n`` rows and ``h = n // 2``: rows ``[0, h)`` += rows ``[h, 2h)``; an odd
    last row is kept as row ``h``; repeat until one row remains.
    """
    if a.shape[0] == 0:
        return np.zeros(a.shape[1:], dtype=a.dtype)
    while a.shape[0] > 1:
        half = a.shape[0] // 2
        folded = a[:half] + a[half : 2 * half]
        a = np.concatenate([folded, a[2 * half :]]) if a.shape[0] % 2 else folded
    total: np.ndarray = a[0]
    return total


def orthonormal_columns(a: np.ndarray) -> np.ndarray:
    """Q of the thin QR decomposition of ``a`` (m × n, m ≥ n) with diag(R) > 0.

    Column j: ``v = a_j``; twice ``v -= Q_{<j} (Q_{<j}ᵀ v)``; ``q_j = v / ||v||``.
    A column that is (numerically) dependent on its predecessors cannot occur
    for a Gaussian matrix except with probability zero; it would give NaN.
    """
    m, n = a.shape
    q_rows = np.zeros((n, m))  # row j holds column j of Q (contiguous)
    for j in range(n):
        v = a[:, j].astype(np.float64, copy=True)
        if j:
            basis = q_rows[:j]
            for _ in range(2):
                coefficients = tree_sum((basis * v).T)
                v -= tree_sum(basis * coefficients[:, None])
        q_rows[j] = v / np.sqrt(tree_sum(v * v))
    return q_rows.T
