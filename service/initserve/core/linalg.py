"""Deterministic orthonormalisation (the QR step of orthogonal initialisation).

LAPACK/BLAS results depend on the CPU kernel, blocking, FMA use and thread
count, so a BLAS product can only be used when it is *exact*: then every order
of summation gives the same bits. :func:`exact_matmul` arranges that with the
error-free splitting of Ozaki, Ogita, Oishi and Rump ("Error-free
transformations of matrix multiplication by using fast routines of matrix
multiplication", Numer. Algorithms 59, 2012). :func:`orthonormal_columns` is
block classical Gram–Schmidt with re-orthogonalisation ("twice is enough",
Giraud et al., Numer. Math. 2005; BCGS2, Barlow & Smoktunowicz, Numer. Math.
2013) on two levels of column blocks; the narrowest blocks are done column by
column with :func:`tree_sum`. The result is the Q factor of the thin QR
decomposition with a positive diagonal in R — the matrix PyTorch's
``orthogonal_`` obtains by multiplying LAPACK's Q by ``sign(diag(R))``.

Every panel and column starts with :func:`initserve.core.deadline.check`, so a request's time
limit stops a large orthogonalisation within about one panel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from initserve.core import deadline

PANELS = (128, 32)  # block widths of the two levels of block Gram–Schmidt


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


def split_parameters(k: int) -> tuple[int, int]:
    """(β, s) for an inner dimension ``k ≥ 1``: ``β = ⌊(53 − ⌈log₂ k⌉) / 2⌋``, ``s = ⌈56 / β⌉``."""
    beta = (53 - (k - 1).bit_length()) // 2
    return beta, -(-56 // beta)


def split_rows(a: np.ndarray, beta: int, s: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Exponents ``e`` (p × 1) and ``s`` integer-valued slices ``S_i`` with ``a ≈ 2^e Σ_i S_i 2^(−iβ)``.

    Row ``r`` is scaled to ``x = a_r · 2^(−e_r)``, ``e_r`` = the frexp exponent of
    ``max |a_r|`` (0 for a zero row), so ``|x| < 1`` (exact: a power of two).
    Then for ``i = 1 … s``, with ``σ_i = 0.75 · 2^(53 − iβ)`` and ``g = 2^(−iβ)``::

        h = (x + σ_i) − σ_i;   x = x − h;   S_i = h · 2^(iβ)

    While ``|x| ≤ σ_i / 3 = 2^(51 − iβ)``, ``x + σ_i`` lies in ``[2^(52 − iβ), 2^(53 − iβ)]``,
    where the doubles are exactly the multiples of ``g``: so ``fl(x + σ_i)`` is
    ``σ_i`` plus ``h`` = ``x`` rounded to the nearest multiple of ``g``, the
    subtraction of ``σ_i`` is exact, and so is ``x − h`` (``|x − h| ≤ g/2``;
    Sterbenz or ``h = 0``; Rump–Ogita–Oishi, SIAM J. Sci. Comput. 2008, ExtractScalar).
    The new ``|x| ≤ 2^(−iβ−1) ≤ 2^(51 − (i+1)β)`` for ``β ≤ 52``. The first ``|h| ≤ 1``,
    the later ``|h| ≤ 2^(−(i−1)β−1)``, so every ``|S_i| ≤ 2^β`` is an integer.
    """
    exponent = np.frexp(np.max(np.abs(a), axis=1, keepdims=True))[1]
    x = np.ldexp(a, -exponent)
    slices = []
    for i in range(1, s + 1):
        sigma = 0.75 * 2.0 ** (53 - i * beta)
        high = (x + sigma) - sigma
        x = x - high
        slices.append(high * 2.0 ** (i * beta))
    return exponent, slices


def exact_matmul(
    x: np.ndarray, y: np.ndarray, full: bool = True, matmul: Callable[[np.ndarray, np.ndarray], np.ndarray] = np.matmul
) -> np.ndarray:
    """``x @ y`` (p × k times k × q) from BLAS products that are exact, hence the same everywhere.

    Rows of ``x`` and columns of ``y`` are split by :func:`split_rows` (``y`` via
    ``yᵀ``), ``x ≈ 2^ex Σ X_i 2^(−iβ)``, ``y ≈ 2^ey Σ Y_j 2^(−jβ)``. Each ``X_i Y_j`` has
    integer entries and terms with ``|X_il Y_jl| ≤ 2^2β``; any partial sum of any
    subset of its ``k`` terms is an integer of magnitude ≤ ``k · 2^2β ≤ 2^53``, so
    every BLAS (any order, blocking, threads, FMA) computes it exactly.
    Products with ``i + j ≤ s + 1`` are kept (the rest, and the split remainders,
    are below ``k · 2^(ex+ey) · 2^(−sβ+1)``, ``sβ ≥ 56``) and combined by numpy's
    elementwise + in a fixed order, Horner in ``2^(−β)`` over ``d = i + j``:
    ``T_d = Σ_{i=1}^{d−1} X_i Y_{d−i}`` (left to right), ``acc = T_{s+1}``,
    ``acc = T_d + acc · 2^(−β)`` for ``d = s … 2``; result ``ldexp(acc · 2^(−2β), ex + ey)``.
    ``full=False`` drops the products with ``i + j = s + 1`` too (error ``≈ k · 2^(ex+ey−2β)``).
    ``matmul`` computes the slice products (tests pass exact integer versions).
    """
    (p, k), q = x.shape, y.shape[1]
    if k == 0 or p == 0 or q == 0:
        return np.zeros((p, q))
    beta, s = split_parameters(k)
    ex, xs = split_rows(x, beta, s)
    ey, ys = split_rows(y.T, beta, s)
    stacked = np.concatenate(ys)  # row block j − 1 holds Y_jᵀ
    # products[i − 1][:, (j − 1)q : jq] = X_i Y_j, for j ≤ s + 1 − i: one BLAS call per i
    top = s + 1 if full else s  # largest d = i + j kept
    products = [matmul(xs[i - 1], stacked[: (top - i) * q].T) for i in range(1, top)]
    acc = None
    for d in range(top, 1, -1):
        term = products[0][:, (d - 2) * q : (d - 1) * q]
        for i in range(2, d):
            term = term + products[i - 1][:, (d - i - 1) * q : (d - i) * q]
        acc = term if acc is None else term + acc * 2.0**-beta
    assert acc is not None
    result: np.ndarray = np.ldexp(acc * 2.0 ** (-2 * beta), ex + ey.T)
    return result


def _gram_schmidt(a: np.ndarray) -> np.ndarray:
    """CGS2 column by column, every sum a :func:`tree_sum`: twice ``v -= Q (Qᵀ v)``; ``q = v / ||v||``."""
    m, n = a.shape
    q_rows = np.zeros((n, m))  # row j holds column j of Q (contiguous)
    for j in range(n):
        deadline.check()
        v = a[:, j].astype(np.float64, copy=True)
        if j:
            basis = q_rows[:j]
            for _ in range(2):
                coefficients = tree_sum((basis * v).T)
                v -= tree_sum(basis * coefficients[:, None])
        q_rows[j] = v / np.sqrt(tree_sum(v * v))
    return q_rows.T


def orthonormal_columns(a: np.ndarray) -> np.ndarray:
    """Q of the thin QR decomposition of ``a`` (m × n, m ≥ n) with diag(R) > 0.

    Block Gram–Schmidt over panels of ``PANELS[0]`` columns, each panel's QR by
    the same over ``PANELS[1]`` columns, whose QR is :func:`_gram_schmidt`. A
    column that is (numerically) dependent on its predecessors cannot occur for a
    Gaussian matrix except with probability zero; it would give NaN.
    """
    return _block_gram_schmidt(np.asarray(a, dtype=np.float64), PANELS)


def _block_gram_schmidt(a: np.ndarray, widths: tuple[int, ...]) -> np.ndarray:
    """BCGS2 over panels of ``widths[0]`` columns; panel QR by ``widths[1:]``, then :func:`_gram_schmidt`.

    For each panel ``B`` (columns ``j … j + w − 1``), ``Q₁`` = the ``j`` columns made:
    ``B = B − Q₁ (Q₁ᵀ B)`` twice, both products by :func:`exact_matmul`, with
    ``full=False`` for ``Q₁ᵀ B`` in the first pass (its error lies in span Q₁, which the
    second pass removes) and for ``Q₁ C`` in the second (``C`` is tiny there).
    """
    if not widths:
        return _gram_schmidt(a)
    m, n = a.shape
    q = np.empty((m, n))
    for j in range(0, n, widths[0]):
        deadline.check()
        b = a[:, j : j + widths[0]]
        if j:
            q1 = q[:, :j]
            b = b - exact_matmul(q1, exact_matmul(q1.T, b, full=False))
            b = b - exact_matmul(q1, exact_matmul(q1.T, b), full=False)
        q[:, j : j + widths[0]] = _block_gram_schmidt(b, widths[1:])
    return q
