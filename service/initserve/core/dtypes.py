"""Output dtypes and the one rounding rule.

Values are computed in double precision. float32 is the double rounded to
nearest-even; float16 and bfloat16 are the float32 value rounded to
nearest-even (so all four float dtypes of one spec agree up to rounding). numpy
has no bfloat16: it is carried as its uint16 bit pattern.

int64 exists for integer buffers such as torch BatchNorm's
``num_batches_tracked``: only methods whose values are exact integers (zeros,
ones, an integer constant, eye and dirac with an integer gain) may use it, so
the conversion from double is exact.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

DType = Literal["float32", "float64", "float16", "bfloat16", "int64"]
DTYPES: tuple[DType, ...] = ("float32", "float64", "float16", "bfloat16", "int64")
INTEGER_DTYPES = frozenset({"int64"})

STORAGE: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
    "int64": np.dtype("<i8"),
}


def float32_to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16 (nearest-even), as uint16 bit patterns.

    ``bits + 0x7FFF + ((bits >> 16) & 1)``, then the top 16 bits. Inputs are
    finite (no NaN is ever generated); overflow correctly becomes ±inf.
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def round_to(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round double ``values`` to ``dtype`` storage (see module docstring)."""
    if dtype in ("float64", "int64"):
        return values.astype(STORAGE[dtype], copy=False)
    single = values.astype(np.float32)
    if dtype == "float32":
        return single
    if dtype == "float16":
        return single.astype(STORAGE["float16"])
    return float32_to_bfloat16_bits(single)


# Largest finite value of each dtype (bfloat16: 0x7F7F = (2 − 2⁻⁷)·2¹²⁷).
LARGEST: dict[str, float] = {
    "float32": float(np.finfo(np.float32).max),
    "float64": float(np.finfo(np.float64).max),
    "float16": float(np.finfo(np.float16).max),
    "bfloat16": (2 - 2.0**-7) * 2.0**127,
    "int64": 2.0**63 - 1024,  # the largest double below 2**63
}
