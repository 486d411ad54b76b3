"""Reading a safetensors file's header (for checkpoints uploaded to ``/v1/model``).

The layout is the one :mod:`initserve.formats.safetensors` writes: an 8-byte
little-endian header length ``N``, ``N`` bytes of JSON, then the byte buffer.
Every entry but ``__metadata__`` is ``{"dtype", "shape", "data_offsets"}``
with offsets relative to the buffer. A malformed file is a :class:`FormatError`
naming the ``checkpoint`` field.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from initserve.formats.errors import FormatError
from initserve.formats.safetensors import MAX_HEADER_BYTES, METADATA_KEY

READABLE_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
}


@dataclass(frozen=True)
class StoredTensor:
    """One tensor of a safetensors file: dtype code, shape and absolute byte range in the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _bad(message: str) -> FormatError:
    return FormatError("checkpoint", None, f"not a readable safetensors file: {message}")


def read_header(read: Callable[[int, int], bytes], size: int) -> dict[str, StoredTensor]:
    """The tensors of a safetensors file of ``size`` bytes; ``read(offset, length)`` reads the file."""
    if size < 8:
        raise _bad(f"{size} bytes is shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", read(0, 8))
    if length > min(MAX_HEADER_BYTES, size - 8):
        raise _bad(f"header length {length} does not fit the file")
    try:
        header = json.loads(read(8, length))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, an integer over 4300 digits, nested too deep
        raise _bad(f"header is not JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(header, dict):
        raise _bad("header is not a JSON object")
    start = 8 + length
    tensors: dict[str, StoredTensor] = {}
    for name, entry in header.items():
        if name == METADATA_KEY:
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise _bad(f"entry {name!r} lacks dtype, shape or data_offsets") from None
        if not isinstance(dtype, str) or dtype not in READABLE_DTYPES:  # a list or an object is not hashable
            raise FormatError("checkpoint", name, f"tensor dtype {dtype!r} is not one of {', '.join(READABLE_DTYPES)}")
        valid = all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (*shape, begin, end))
        if not valid or end - begin != math.prod(shape) * READABLE_DTYPES[dtype].itemsize or start + end > size:
            raise _bad(f"entry {name!r} has inconsistent shape and data_offsets")
        tensors[name] = StoredTensor(name, dtype, shape, start + begin, start + end)
    return tensors
