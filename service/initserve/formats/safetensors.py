"""safetensors encoder, for one tensor or many.

Layout per the safetensors format specification
(https://github.com/huggingface/safetensors, "Format")::

    N (8 bytes, little-endian uint64) | header (N bytes, UTF-8 JSON) | byte buffer

The header is a JSON object with an optional ``"__metadata__"`` map of string
to string and, for every tensor, ``{"dtype", "shape", "data_offsets": [begin,
end]}``, offsets relative to the start of the byte buffer. The header starts
with ``{`` and is padded with trailing spaces (0x20) so that ``8 + N`` is a
multiple of 8. The buffer is entirely indexed, without holes or overlaps: the
tensors are laid out back to back, in the order given, each little-endian and
row-major.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

import orjson

from initserve.formats.body import EncodedBody, Part, TensorPart, assemble
from initserve.formats.errors import FormatError
from initserve.formats.source import TensorSource, check_names

MEDIA_TYPE = "application/octet-stream"
ALIGNMENT = 8
METADATA_KEY = "__metadata__"
MAX_HEADER_BYTES = 100_000_000  # the reference reader refuses larger headers

SAFETENSORS_DTYPES: dict[str, str] = {
    "float32": "F32",
    "float64": "F64",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
}


def _check_names(sources: Sequence[TensorSource]) -> None:
    check_names(sources, "safetensors")
    if any(source.name == METADATA_KEY for source in sources):
        raise FormatError("name", METADATA_KEY, f"{METADATA_KEY!r} is reserved by the safetensors format")


def safetensors_header(sources: Sequence[TensorSource], metadata: Mapping[str, str]) -> bytes:
    """The 8-byte length prefix and the space-padded JSON header for ``sources`` laid out in order."""
    _check_names(sources)
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"safetensors metadata must map str to str, got {key!r}: {value!r}")
    header: dict[str, object] = {}
    if metadata:
        header[METADATA_KEY] = dict(metadata)
    offset = 0
    for source in sources:
        if source.dtype not in SAFETENSORS_DTYPES:
            raise FormatError("dtype", source.dtype, f"unknown dtype {source.dtype!r}")
        end = offset + TensorPart(source).nbytes
        header[source.name] = {
            "dtype": SAFETENSORS_DTYPES[source.dtype],
            "shape": [int(dim) for dim in source.shape],
            "data_offsets": [offset, end],
        }
        offset = end
    text = orjson.dumps(header)
    text += b" " * (-(8 + len(text)) % ALIGNMENT)
    if len(text) > MAX_HEADER_BYTES:
        raise FormatError("format", "safetensors", f"header of {len(text)} bytes exceeds {MAX_HEADER_BYTES}")
    return struct.pack("<Q", len(text)) + text


def encode_safetensors(sources: Sequence[TensorSource], metadata: Mapping[str, str]) -> EncodedBody:
    """Encode ``sources`` as one streamed safetensors file with ``metadata`` in ``__metadata__``.

    Raises :class:`FormatError` (field ``name``) for an empty, reserved or duplicate tensor name.
    """
    parts: list[Part] = [safetensors_header(sources, metadata)]
    parts.extend(TensorPart(source) for source in sources)
    return assemble(parts, MEDIA_TYPE)
