"""JSON encoders, for one tensor or many.

One tensor (:func:`encode_json`)::

    {"name", "shape", "dtype", <extra keys>..., "data"}

Many tensors (:func:`encode_json_many`), in the order given::

    {<extra keys>..., "tensors": [{"name", "shape", "dtype", "data"}, ...]}

``data`` is the flat row-major list of values (RFC 8259 numbers), so a 0-D
tensor has one value and a zero-size tensor an empty list. int64 values are
written as integers (``0``, never ``0.0``), exactly. Floating-point numbers are
written by orjson as the shortest decimal that round-trips in the tensor's
precision:

- float64: shortest round-trip float64 representation;
- float32: shortest round-trip float32 representation (orjson's numpy support
  formats float32 arrays with float32 precision);
- float16 and bfloat16: the exact value widened to float32, written as the
  shortest float32 representation.

Parsing a number as float64 and rounding it to the tensor's dtype therefore
gives back exactly the stored value: the decimal is within half a float32 ulp
of a value that float16/bfloat16/float32 represent exactly, and their grids
are at least as coarse as float32's.

JSON has no NaN or infinity; a tensor holding them is refused with a
:class:`FormatError`. The document is built in memory (the API caps the size of
JSON responses) but is still returned as an :class:`EncodedBody`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import orjson

from initserve.formats.body import EncodedBody, Part, assemble
from initserve.formats.errors import FormatError
from initserve.formats.source import TensorSource, element_count, storage_dtype

MEDIA_TYPE = "application/json"
RESERVED_KEYS = frozenset({"name", "shape", "dtype", "data"})
TENSORS_KEY = "tensors"


def json_values(array: np.ndarray, dtype: str) -> np.ndarray:
    """The array orjson should serialize for a storage-dtype chunk of a ``dtype`` tensor.

    Floating-point dtypes give float32 or float64 arrays, ``int64`` an int64
    array (which orjson writes as integers).
    """
    if dtype == "bfloat16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    if dtype == "float16":
        return array.astype(np.float32)
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _tensor_parts(source: TensorSource, extra: Mapping[str, object]) -> list[Part]:
    """The parts of the object ``{"name", "shape", "dtype", <extra keys>..., "data"}`` for ``source``."""
    storage_dtype(source.dtype)  # reject unknown dtypes up front
    head = {"name": source.name, "shape": [int(dim) for dim in source.shape], "dtype": source.dtype, **extra}
    opening = orjson.dumps(head)
    parts: list[Part] = [opening[:-1] + b',"data":[']  # reopen the object after the head keys
    separator = b""
    for chunk in source.iter_flat(0, element_count(source.shape)):
        if chunk.size == 0:
            continue
        values = json_values(chunk, source.dtype)
        if not np.isfinite(values).all():
            raise FormatError(
                "format", "json", "format 'json' cannot carry NaN or infinity; use format=npy, safetensors or raw"
            )
        parts.append(separator + orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1])
        separator = b","
    parts.append(b"]}")
    return parts


def encode_json(source: TensorSource, extra: Mapping[str, object] | None = None) -> EncodedBody:
    """Encode ``source`` as a JSON document; ``extra`` adds top-level keys before ``"data"``.

    ``extra`` must not redefine ``name``, ``shape``, ``dtype`` or ``data`` (a
    caller bug: ``ValueError``). Non-finite values raise :class:`FormatError`.
    """
    clash = RESERVED_KEYS.intersection(extra or {})
    if clash:
        raise ValueError(f"extra keys {sorted(clash)} clash with the JSON tensor fields")
    return assemble(_tensor_parts(source, extra or {}), MEDIA_TYPE)


def encode_json_many(sources: Sequence[TensorSource], extra: Mapping[str, object] | None = None) -> EncodedBody:
    """Encode ``sources`` as one JSON document: ``extra`` keys, then ``"tensors"``, one object per source in order.

    ``extra`` must not redefine ``tensors`` (a caller bug: ``ValueError``).
    Non-finite values raise :class:`FormatError`.
    """
    if TENSORS_KEY in (extra or {}):
        raise ValueError(f"extra key {TENSORS_KEY!r} clashes with the JSON tensor list")
    opening = orjson.dumps({**(extra or {}), TENSORS_KEY: []})
    parts: list[Part] = [opening[:-2]]  # reopen the list after the extra keys
    for index, source in enumerate(sources):
        if index:
            parts.append(b",")
        parts.extend(_tensor_parts(source, {}))
    parts.append(b"]}")
    return assemble(parts, MEDIA_TYPE)
