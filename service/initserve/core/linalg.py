"""Deterministic random orthonormal columns (the QR step of orthogonal initialisation).

Householder QR of an m × n Gaussian matrix (m ≥ n) reflects column k by
``H_k = I − τ_k v_k v_kᵀ`` built from the vector ``x_k`` below the diagonal of the
*updated* column; after each reflection the trailing block is again i.i.d.
Gaussian and independent of the reflectors so far, so the ``x_k`` may as well
be fresh Gaussian vectors of lengths m, m − 1, …, m − n + 1 (G. W. Stewart,
"The efficient generation of random orthogonal matrices with an application to
condition estimators", SIAM J. Numer. Anal. 17(3), 1980). Here ``x_k = G[k:, k]``,
the column k of the Gaussian matrix ``G`` from the diagonal down (its upper
triangle is unused), and with every sign as in LAPACK's ``dlarfg``::

    t_k  = Σ_{r>k} G[r, k]²                  (in order r = k+1 … m−1)
    s_k  = +1 if G[k, k] < 0 else −1         (= sign(α_k))
    α_k  = s_k · sqrt(G[k, k]² + t_k)        (= −sign(x_k[0]) ‖x_k‖, R's diagonal)
    v_k  = x_k − α_k e_1                      (top entry v0_k = G[k, k] − α_k, no cancellation)
    τ_k  = 2 / (v0_k² + t_k)                  (= 2 / v_kᵀ v_k)
    Q    = H_0 H_1 ⋯ H_{n−1} · E,  E = I[:, :n] · diag(s)

``Q · diag(s)`` is Q·sign(diag R), so Q has the law of PyTorch's ``orthogonal_``
(Haar measure on the m × n matrices with orthonormal columns), not its value.

Q is accumulated backwards in blocks of :data:`NB` reflectors like LAPACK's
``dorgqr``: for ``J = [j, j + b)`` from the last block to the first, with ``V``
the (m − j) × b matrix of the block's ``v_k`` (zeros above each top entry) and
``T`` its upper triangular compact WY factor, ``H_j ⋯ H_{j+b−1} = I − V T Vᵀ``
(Schreiber & Van Loan, SIAM J. Sci. Stat. Comput. 10(1), 1989)::

    Q[j:, j:] −= V (T (Vᵀ Q[j:, j:]))

About 4/3 · n³ flops for a square matrix. The products run in the compiled
``_linalg`` module, every sum in index order (docs/determinism.md § 7), on
:data:`THREADS` threads that split output columns, never a sum: the bits do not
depend on the CPU, the SIMD build or the thread count.

Every block starts with :func:`initserve.core.deadline.check`, so a request's time
limit stops a large orthogonalisation within about one block.
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy as np

from initserve.core import deadline

_compiled: ModuleType | None
try:
    from initserve.core import _linalg as _compiled
except ImportError:  # not built (a bare source tree): orthogonal methods are unavailable
    _compiled = None

NB = 96  # reflectors per block
THREADS = os.cpu_count() or 1


def compiled() -> ModuleType:
    """The compiled ``_linalg`` module; RuntimeError when the extension is not built."""
    if _compiled is None:
        raise RuntimeError("orthogonal initialisation needs the compiled module initserve.core._linalg: "
                           "build the package (pip install -e .)")
    return _compiled


def reflectors(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(s, v0, τ)`` of the reflectors of the m × n matrix ``g`` (m ≥ n), by the formulas above."""
    n = g.shape[1]
    below = np.empty(n)
    compiled().squares_below_diagonal(g, below)
    x0 = np.diagonal(g)
    s = np.where(x0 < 0, 1.0, -1.0)
    v0 = x0 - s * np.sqrt(x0 * x0 + below)
    tau = 2.0 / (v0 * v0 + below)
    return s, v0, tau


def orthonormal_columns(g: np.ndarray, threads: int = THREADS) -> np.ndarray:
    """Q (m × n, orthonormal columns) from the Gaussian m × n matrix ``g``, m ≥ n; see the module docstring."""
    linalg = compiled()
    m, n = g.shape
    if m < n:
        raise ValueError(f"orthonormal_columns needs rows >= columns, got {m} × {n}")
    s, v0, tau = reflectors(g)
    q = np.zeros((m, n))
    diagonal = np.arange(n)
    q[diagonal, diagonal] = s  # E; block j's columns are untouched until its turn (later blocks write Q[j′:, j′:])
    for j in reversed(range(0, n, NB)):
        deadline.check()
        b = min(NB, n - j)
        v = g[j:, j : j + b].copy()  # column a: v_{j+a}, i.e. rows below v0 from G, zeros above
        v[:b] = np.tril(v[:b], -1)
        np.fill_diagonal(v, v0[j : j + b])
        linalg.reflect_block(q[j:, j:], v, tau[j : j + b], threads)
    return q
