"""Bytes to numpy arrays: the raw format, safetensors (parsed with numpy only), bfloat16.

bfloat16 has no numpy dtype. When ``ml_dtypes`` is importable (extra ``bfloat16``), bfloat16 tensors are
``ml_dtypes.bfloat16`` arrays (the same 16-bit patterns, viewed); otherwise they are float32 arrays holding
exactly the same values (every bfloat16 is a float32: its bits followed by 16 zero bits). The fallback is
decided at each call, so installing ml_dtypes later needs no restart of anything but the import.

Arrays are views of the (writable) buffer they were decoded from: no copy for little-endian hosts.
"""

from __future__ import annotations

import importlib
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from initserve_client.errors import IntegrityError

STORAGE: dict[str, np.dtype[Any]] = {
    "float64": np.dtype("<f8"),
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
    "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "int16": np.dtype("<i2"),
    "int8": np.dtype("i1"),
    "uint64": np.dtype("<u8"),
    "uint32": np.dtype("<u4"),
    "uint16": np.dtype("<u2"),
    "uint8": np.dtype("u1"),
    "bool": np.dtype("?"),
}
"""Storage (little-endian) dtype of each dtype name; bfloat16 is carried as its uint16 bit pattern."""

SAFETENSORS_DTYPES: dict[str, str] = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}  # fmt: skip
"""safetensors dtype codes → dtype names."""


def bfloat16_dtype() -> np.dtype[Any] | None:
    """``ml_dtypes.bfloat16`` when ml_dtypes is importable, else None."""
    try:
        module: Any = importlib.import_module("ml_dtypes")
    except ImportError:
        return None
    dtype: np.dtype[Any] = np.dtype(module.bfloat16)
    return dtype


def from_bfloat16_bits(bits: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """bfloat16 values from their uint16 bit patterns: ``ml_dtypes.bfloat16`` (a view) or float32 (a copy)."""
    native = bits.astype(np.dtype("=u2"), copy=False)
    bfloat16 = bfloat16_dtype()
    if bfloat16 is not None:
        return native.view(bfloat16)
    return (native.astype(np.uint32) << np.uint32(16)).view(np.float32)


def storage_dtype(name: str) -> np.dtype[Any]:
    """The little-endian storage dtype of ``name`` (:class:`IntegrityError` for an unknown dtype)."""
    try:
        return STORAGE[name]
    except KeyError:
        raise IntegrityError(f"the service sent an unknown dtype {name!r}") from None


def decode(buffer: bytearray | memoryview | bytes, dtype: str, shape: tuple[int, ...],
           offset: int = 0) -> np.ndarray[Any, Any]:
    """The array of ``shape`` and ``dtype`` stored little-endian at ``offset`` of ``buffer`` (a view when the
    host is little-endian; bfloat16 per the module docstring)."""
    storage = storage_dtype(dtype)
    count = math.prod(shape)
    if offset + count * storage.itemsize > len(buffer):
        raise IntegrityError(f"the body holds {len(buffer) - offset} bytes, a {dtype} tensor of shape "
                             f"{list(shape)} needs {count * storage.itemsize}")
    flat = np.frombuffer(buffer, dtype=storage, count=count, offset=offset) if count else np.empty(0, storage)
    if dtype == "bfloat16":
        flat = from_bfloat16_bits(flat)
    elif not storage.isnative:
        flat = flat.astype(storage.newbyteorder("="))
    return flat.reshape(shape)


def little_endian_bytes(array: np.ndarray[Any, Any], dtype: str) -> bytes:
    """The bytes the service stores for ``array`` as ``dtype`` (the inverse of :func:`decode`; bfloat16 as bits,
    whether the array is ml_dtypes.bfloat16 or its float32 fallback)."""
    if dtype == "bfloat16":
        if array.dtype.itemsize == 4:
            array = (np.ascontiguousarray(array, dtype=np.float32).view(np.uint32) >> np.uint32(16)).astype(np.uint16)
        return np.ascontiguousarray(array).view(np.uint16).astype("<u2").tobytes()
    return np.ascontiguousarray(array, dtype=storage_dtype(dtype)).tobytes()


# --- raw ---------------------------------------------------------------------------------------------------


def parse_shape(text: str) -> tuple[int, ...]:
    """``"256,128"`` → ``(256, 128)``; ``""`` → ``()`` (the ``X-Initserve-Shape`` header)."""
    try:
        return tuple(int(part) for part in text.split(",")) if text.strip() else ()
    except ValueError:
        raise IntegrityError(f"unreadable X-Initserve-Shape header {text!r}") from None


def decode_raw(buffer: bytearray | bytes, headers: Mapping[str, str]) -> np.ndarray[Any, Any]:
    """A ``format=raw`` answer: the buffer, shaped and typed by ``X-Initserve-Shape`` / ``X-Initserve-Dtype``."""
    shape_header, dtype = headers.get("x-initserve-shape"), headers.get("x-initserve-dtype")
    if shape_header is None or dtype is None:
        raise IntegrityError("a raw answer without X-Initserve-Shape and X-Initserve-Dtype headers")
    shape = parse_shape(shape_header)
    expected = math.prod(shape) * storage_dtype(dtype).itemsize
    if len(buffer) != expected:
        raise IntegrityError(f"raw answer of {len(buffer)} bytes for a {dtype} tensor of shape {list(shape)} "
                             f"({expected} bytes)")
    return decode(buffer, dtype, shape)


# --- safetensors -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One tensor of a safetensors file: dtype name, shape and absolute ``[start, end)`` byte range."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


@dataclass(frozen=True)
class SafetensorsLayout:
    """The header of a safetensors file: tensors in byte order, metadata, header length (without the 8-byte
    length prefix) and total length."""

    entries: tuple[Entry, ...]
    metadata: dict[str, str]
    header_length: int
    length: int


def _malformed(reason: str) -> IntegrityError:
    return IntegrityError(f"malformed safetensors answer: {reason}")


def _entry(name: str, info: Any, base: int) -> Entry:
    if not isinstance(info, dict) or info.get("dtype") not in SAFETENSORS_DTYPES:
        raise _malformed(f"tensor {name!r} has no known dtype")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(dim, int) and dim >= 0 for dim in shape):
        raise _malformed(f"tensor {name!r} has an invalid shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise _malformed(f"tensor {name!r} has invalid data_offsets")
    dtype = SAFETENSORS_DTYPES[info["dtype"]]
    if offsets[1] - offsets[0] != math.prod(shape) * STORAGE[dtype].itemsize:
        raise _malformed(f"tensor {name!r}: data_offsets {offsets} do not fit its shape and dtype")
    return Entry(name, dtype, tuple(shape), base + offsets[0], base + offsets[1])


def read_layout(head: bytes | bytearray | memoryview, length: int) -> SafetensorsLayout:
    """The layout of a safetensors file of ``length`` bytes from its first bytes ``head`` (8-byte length prefix
    and the whole JSON header). Checks that the tensors cover the byte buffer back to back."""
    if len(head) < 8:
        raise _malformed("shorter than its 8-byte header length")
    (header_length,) = struct.unpack_from("<Q", head)
    if 8 + header_length > min(len(head), length):
        raise _malformed(f"header of {header_length} bytes past the end of the body")
    try:
        header = json.loads(bytes(head[8 : 8 + header_length]))
    except ValueError as exc:
        raise _malformed(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _malformed("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    base = 8 + header_length
    entries = sorted((_entry(name, info, base) for name, info in header.items()), key=lambda e: (e.start, e.end))
    position = base
    for entry in entries:
        if entry.start != position:
            raise _malformed(f"tensor {entry.name!r} starts at byte {entry.start}, expected {position}")
        position = entry.end
    if position != length:
        raise _malformed(f"tensors end at byte {position}, the body has {length}")
    return SafetensorsLayout(tuple(entries), dict(metadata), header_length, length)


def parse_safetensors(buffer: bytearray | bytes) -> dict[str, np.ndarray[Any, Any]]:
    """Every tensor of a safetensors file held in ``buffer``, in byte order (the order the service wrote them),
    as views of ``buffer`` (bfloat16 per the module docstring)."""
    layout = read_layout(buffer, len(buffer))
    return {entry.name: decode(buffer, entry.dtype, entry.shape, entry.start) for entry in layout.entries}


def json_model_arrays(document: Mapping[str, Any]) -> dict[str, np.ndarray[Any, Any]]:
    """The tensors of a ``/v1/model?format=json`` answer (``{"tensors": [{name, shape, dtype, data}]}``), in
    order; bfloat16 values as :func:`from_bfloat16_bits` gives them."""
    arrays = {}
    try:
        for tensor in document["tensors"]:
            dtype, shape = str(tensor["dtype"]), tuple(tensor["shape"])
            if dtype == "bfloat16":
                bits = (np.asarray(tensor["data"], dtype=np.float32).view(np.uint32) >> np.uint32(16))
                array = from_bfloat16_bits(bits.astype(np.uint16))
            else:
                array = np.asarray(tensor["data"], dtype=storage_dtype(dtype).newbyteorder("="))
            arrays[str(tensor["name"])] = array.reshape(shape)
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"malformed JSON model answer ({exc!r})") from None
    return arrays
