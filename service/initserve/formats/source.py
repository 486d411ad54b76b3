"""The lazy tensor protocol the encoders consume.

``formats/`` never imports the numerics core: anything with a name, a shape, a
dtype, string metadata and an ``iter_flat`` method can be encoded. Values are
exchanged in their little-endian *storage* dtype; bfloat16 travels as the raw
16-bit patterns in ``<u2`` (the high half of the float32 bit pattern), because
numpy has no bfloat16. ``int64`` carries integer counters such as torch
BatchNorm's ``num_batches_tracked``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

import numpy as np

from initserve.formats.errors import FormatError

DType = Literal["float32", "float64", "float16", "bfloat16", "int64"]

STORAGE_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
    "int64": np.dtype("<i8"),
}


class TensorSource(Protocol):
    """A tensor whose values are generated on demand, in row-major order."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> str: ...

    @property
    def metadata(self) -> dict[str, str]: ...

    def iter_flat(self, start: int, stop: int) -> Iterator[np.ndarray]:
        """Yield 1-D storage-dtype arrays covering elements ``[start, stop)`` in order.

        Each array is a bounded chunk; together they hold exactly
        ``stop - start`` elements.
        """
        ...


S = TypeVar("S", bound=TensorSource)


@dataclass(frozen=True)
class SourceView(Generic[S]):
    """``source`` presented as it is; subclasses change one aspect (its name, what iterating it does)."""

    source: S

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.source.shape

    @property
    def dtype(self) -> str:
        return self.source.dtype

    @property
    def metadata(self) -> dict[str, str]:
        return self.source.metadata

    def iter_flat(self, start: int, stop: int) -> Iterator[np.ndarray]:
        return self.source.iter_flat(start, stop)


def storage_dtype(dtype: str) -> np.dtype:
    """The little-endian numpy dtype that carries ``dtype`` (``<u2`` for bfloat16)."""
    try:
        return STORAGE_DTYPES[dtype]
    except KeyError:
        raise FormatError(
            "dtype", dtype, f"unknown dtype {dtype!r}; expected one of {sorted(STORAGE_DTYPES)}"
        ) from None


def element_count(shape: tuple[int, ...]) -> int:
    """Number of elements of a tensor of ``shape`` (1 for a 0-D tensor)."""
    return math.prod(shape)


def check_names(sources: Sequence[TensorSource], fmt: str) -> None:
    """Raise :class:`FormatError` (field ``name``) unless every tensor name in ``sources`` is non-empty and unique."""
    seen: set[str] = set()
    for source in sources:
        if not source.name:
            raise FormatError("name", source.name, f"format {fmt!r} needs a non-empty tensor name")
        if source.name in seen:
            raise FormatError("name", source.name, f"duplicate tensor name {source.name!r}; names must be unique")
        seen.add(source.name)
