"""Encoded bodies: a byte stream whose total length is known before any value is generated.

An encoder describes its output as a list of *parts*: literal ``bytes`` (headers,
padding, in-memory JSON) and :class:`Segment` objects, whose length is known up
front and whose bytes are produced on demand: :class:`TensorPart` (the
little-endian data buffer of a lazy tensor) and :class:`DeferredBytes` (a short
field, such as a checksum, computed when a range reaches it). :func:`assemble`
turns the parts into an :class:`EncodedBody`
whose ``length`` is the exact byte count, whose ``chunks`` are produced lazily in
pieces of at most :data:`MAX_CHUNK_BYTES`, and whose ``byte_range`` yields any
byte range ``[start, stop)`` while generating only the elements that overlap it
(what an HTTP ``Range`` request or a rank fetching its own shard needs).

Memory stays bounded by the chunk size of the source plus one output chunk,
whatever the size of the tensor.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from initserve.formats.source import TensorSource, element_count, storage_dtype

MAX_CHUNK_BYTES = 4 * 1024 * 1024
"""Upper bound on the size of one chunk of an encoded body."""

Chunk = bytes | memoryview
"""A piece of a body: bytes, or a read-only byte view (``len`` is its size) of a buffer generated for it."""


def _owner(array: np.ndarray) -> np.ndarray:
    """The array that owns ``array``'s memory (``array`` itself if it is not a view of another array)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


@dataclass(frozen=True)
class EncodedBody:
    """A response body: media type, exact length, extra headers and lazy chunks.

    ``chunks`` is a single-use iterator over the whole body. ``byte_range(start,
    stop)`` returns a fresh iterator over bytes ``[start, stop)``; it may be
    called any number of times.
    """

    media_type: str
    length: int
    headers: dict[str, str]
    chunks: Iterator[Chunk]
    byte_range: Callable[[int, int], Iterator[Chunk]] = field(repr=False)


@dataclass(frozen=True)
class TensorPart:
    """The little-endian data buffer of one tensor, generated on demand."""

    source: TensorSource

    @property
    def itemsize(self) -> int:
        """Bytes per stored element."""
        return storage_dtype(self.source.dtype).itemsize

    @property
    def nbytes(self) -> int:
        """Size of the data buffer in bytes."""
        return element_count(self.source.shape) * self.itemsize

    def iter_bytes(self, lo: int, hi: int) -> Iterator[Chunk]:
        """Yield bytes ``[lo, hi)`` of the buffer, generating only the elements that overlap them.

        A piece is a read-only view of the array the source yielded when that array is the whole of its buffer
        (generated for this range: no copy, the buffer freed with the view); a copy when it is a view into a larger
        buffer (a whole matrix, cached), so that a piece in flight never keeps more than itself alive."""
        if lo >= hi:
            return
        expected = storage_dtype(self.source.dtype)
        size = self.itemsize
        first, last = lo // size, -(-hi // size)
        skip = lo - first * size  # bytes to drop from the first element
        remaining = hi - lo
        seen = 0
        step = max(1, MAX_CHUNK_BYTES // size)
        for array in self.source.iter_flat(first, last):
            if array.dtype != expected or array.ndim != 1:
                raise TypeError(
                    f"source {self.source.name!r} yielded {array.dtype.str}{array.shape}, expected 1-D {expected.str}"
                )
            seen += array.size
            if seen > last - first:
                raise ValueError(f"source {self.source.name!r} yielded more than {last - first} elements")
            shared = _owner(array).nbytes > array.nbytes  # a view into a buffer that outlives this chunk
            for begin in range(0, array.size, step):
                raw = np.ascontiguousarray(array[begin : begin + step]).view(np.uint8)[skip : skip + remaining]
                data = raw.tobytes() if shared else raw.data.toreadonly()
                skip = 0
                remaining -= len(data)
                if data:
                    yield data
        if seen != last - first:
            raise ValueError(f"source {self.source.name!r} yielded {seen} elements, expected {last - first}")


@dataclass(frozen=True)
class DeferredBytes:
    """``nbytes`` bytes whose content ``compute()`` returns only once a range reaches them."""

    nbytes: int
    compute: Callable[[], bytes] = field(repr=False)

    def iter_bytes(self, lo: int, hi: int) -> Iterator[bytes]:
        """Yield bytes ``[lo, hi)`` of the computed content."""
        data = self.compute()
        if len(data) != self.nbytes:
            raise ValueError(f"deferred part computed {len(data)} bytes, expected {self.nbytes}")
        yield from _slices(data, lo, hi)


class Segment(Protocol):
    """A part of known length whose bytes ``[lo, hi)`` are produced on demand."""

    @property
    def nbytes(self) -> int: ...

    def iter_bytes(self, lo: int, hi: int) -> Iterator[Chunk]: ...


Part = bytes | Segment


def _part_length(part: Part) -> int:
    return len(part) if isinstance(part, bytes) else part.nbytes


def _slices(data: bytes, lo: int, hi: int) -> Iterator[bytes]:
    for begin in range(lo, hi, MAX_CHUNK_BYTES):
        yield data[begin : min(begin + MAX_CHUNK_BYTES, hi)]


def iter_parts(parts: Sequence[Part], start: int, stop: int) -> Iterator[Chunk]:
    """Yield bytes ``[start, stop)`` of the concatenation of ``parts``, touching only the parts that overlap them."""
    offset = 0
    for part in parts:
        end = offset + _part_length(part)
        lo, hi = max(start, offset) - offset, min(stop, end) - offset
        if lo < hi:
            yield from _slices(part, lo, hi) if isinstance(part, bytes) else part.iter_bytes(lo, hi)
        offset = end
        if offset >= stop:
            return


def assemble(parts: Sequence[Part], media_type: str, headers: dict[str, str] | None = None) -> EncodedBody:
    """Build the :class:`EncodedBody` that concatenates ``parts`` in order."""
    frozen = tuple(parts)
    ends = tuple(itertools.accumulate(map(_part_length, frozen)))
    length = ends[-1] if ends else 0

    def byte_range(start: int, stop: int) -> Iterator[Chunk]:
        if not 0 <= start <= stop <= length:
            raise ValueError(f"byte range [{start}, {stop}) outside body of length {length}")
        first = bisect.bisect_right(ends, start)  # the first part that ends after ``start``
        offset = ends[first - 1] if first else 0
        return iter_parts(frozen[first:], start - offset, stop - offset)

    return EncodedBody(
        media_type=media_type,
        length=length,
        headers=dict(headers or {}),
        chunks=iter_parts(frozen, 0, length),
        byte_range=byte_range,
    )
