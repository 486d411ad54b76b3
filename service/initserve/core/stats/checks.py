"""Method-specific checks: properties a tensor must have exactly (or to rounding), whatever the sample.

- orthogonal: max |WᵀW − gain²·I| (WWᵀ when W has fewer rows than columns) over the
  canonical rows × cols matrix, against 8·ε·gain²·√k (ε of the dtype, k the longer side:
  the rounding of k-term dot products of stored values);
- delta_orthogonal: the same on the kernel centre, and every other entry exactly 0;
- sparse: every column holds exactly ⌈sparsity·rows⌉ zeros;
- zeros, ones, constant, eye, dirac: the tensor equals the expected tensor built here
  independently (``np.full``, ``np.eye``, torch's dirac loop), rounded to the dtype.

The checks look at the method's values before ``zero_rows``; one more check, ``zero rows``,
requires those rows to be exactly 0. Empty tensors have nothing to check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from initserve.core.dtypes import round_to
from initserve.core.tensor import Tensor

EPSILON = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7, "int64": 0.0}


STRUCTURED = frozenset({"orthogonal", "delta_orthogonal", "sparse", "zeros", "ones", "constant", "eye", "dirac"})


@dataclass(frozen=True)
class Check:
    """One method check: the measured value, the limit it must not exceed, and whether it passed."""

    name: str
    value: float
    limit: float
    detail: str

    @property
    def passed(self) -> bool:
        return self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "limit": self.limit, "passed": self.passed,
                "detail": self.detail}


def canonical_values(tensor: Tensor, zero_rows: bool = True) -> np.ndarray:
    """The whole tensor as float64 in the canonical ``[out, in, *kernel]`` layout (optionally before zero_rows)."""
    values = tensor.region(zero_rows=zero_rows)
    if tensor.dtype == "bfloat16":
        values = (values.astype(np.uint32) << 16).view(np.float32)
    axes = np.argsort(tensor.axes)  # the inverse of the layout permutation
    return np.asarray(values, dtype=np.float64).transpose(axes)


def _orthogonality(matrix: np.ndarray, gain: float, dtype: str, name: str) -> Check:
    rows, cols = matrix.shape
    gram = matrix.T @ matrix if rows >= cols else matrix @ matrix.T
    deviation = float(np.abs(gram - gain * gain * np.eye(len(gram))).max()) if gram.size else 0.0
    limit = 8 * EPSILON[dtype] * gain * gain * math.sqrt(max(rows, cols, 1))
    product = "WᵀW" if rows >= cols else "WWᵀ"
    return Check(name, deviation, limit, f"max |{product} − gain²·I| of the {rows}×{cols} matrix")


def _expected(tensor: Tensor, canonical: tuple[int, ...]) -> np.ndarray | None:
    method, params = tensor.spec.method, tensor.spec.params
    if method in ("zeros", "ones", "constant"):
        return np.full(canonical, {"zeros": 0.0, "ones": 1.0}.get(method, params.get("value", 0.0)))
    if method == "eye":
        rows, cols = canonical
        return np.asarray(params["gain"] * np.eye(rows, cols))
    if method == "dirac":
        expected = np.zeros(canonical)
        out_channels, in_channels, *kernel = canonical
        per_group = out_channels // params["groups"]
        centre = tuple(k // 2 for k in kernel)
        for group in range(params["groups"] if all(kernel) else 0):
            for d in range(min(per_group, in_channels)):
                expected[(group * per_group + d, d, *centre)] = 1.0
        return expected
    return None


def method_checks(tensor: Tensor) -> list[Check]:
    """The checks that apply to ``tensor`` (none for plain random laws without zeroed rows)."""
    checks = _zero_rows_check(tensor)
    if tensor.spec.method in STRUCTURED and tensor.numel:
        checks = _method_checks(tensor, canonical_values(tensor, zero_rows=False)) + checks
    return checks


def _zero_rows_check(tensor: Tensor) -> list[Check]:
    if not tensor.spec.zero_rows:
        return []
    ranges = tensor.spec.zero_rows
    rest = tuple((0, n) for n in tensor.shape[1:])
    nonzero = sum(int(np.count_nonzero(tensor.region(((start, stop), *rest)))) for start, stop in ranges)
    return [Check("zero rows", float(nonzero), 0, f"non-zero entries in rows {[list(r) for r in ranges]}")]


def _method_checks(tensor: Tensor, values: np.ndarray) -> list[Check]:
    method, params, dtype = tensor.spec.method, tensor.spec.params, tensor.dtype
    if method == "orthogonal":
        return [_orthogonality(values.reshape(values.shape[0], -1), params["gain"], dtype, "orthogonality")]
    if method == "delta_orthogonal":
        centre = (slice(None), slice(None), *((k - 1) // 2 for k in values.shape[2:]))
        outside = values.copy()
        outside[centre] = 0.0
        return [_orthogonality(values[centre], params["gain"], dtype, "centre orthogonality"),
                Check("zeros off centre", float(np.count_nonzero(outside)), 0, "non-zero entries off the centre")]
    if method == "sparse":
        rows = values.shape[0]
        zeros = np.count_nonzero(values == 0.0, axis=0)
        wanted = math.ceil(params["sparsity"] * rows)
        off = float(np.abs(zeros - wanted).max()) if zeros.size else 0.0
        return [Check("zeros per column", off, 0, f"largest |zeros in a column − {wanted}|; columns hold "
                      f"{int(zeros.min()) if zeros.size else 0}…{int(zeros.max()) if zeros.size else 0} zeros")]
    expected = _expected(tensor, values.shape)
    assert expected is not None
    stored = round_to(expected, dtype)
    expected = np.asarray(stored if dtype != "bfloat16" else (stored.astype(np.uint32) << 16).view(np.float32),
                          dtype=np.float64).transpose(tensor.axes)
    mismatches = np.count_nonzero(expected != values.transpose(tensor.axes))
    return [Check("exact", float(mismatches), 0, f"entries differing from the expected {method} tensor")]
