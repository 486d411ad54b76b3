"""Output formats: lazily generated tensors to byte streams of known length.

One entry point, :func:`encode`, dispatches on the ``format`` query parameter:

- ``npy``: NumPy ``.npy`` (:mod:`initserve.formats.npy`);
- ``safetensors``: safetensors, one or many tensors (:mod:`initserve.formats.safetensors`);
- ``json``: ``{"name", "shape", "dtype", "data"}`` (:mod:`initserve.formats.json_format`);
- ``raw``: the little-endian buffer, shape and dtype in headers (:mod:`initserve.formats.raw`).

This package knows nothing of HTTP frameworks nor of the numerics core: it
consumes any :class:`TensorSource` and produces an :class:`EncodedBody`.
Errors a client can cause are :class:`FormatError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

import orjson

from initserve.formats.body import MAX_CHUNK_BYTES, EncodedBody
from initserve.formats.errors import FormatError
from initserve.formats.json_format import encode_json
from initserve.formats.npy import encode_npy
from initserve.formats.raw import encode_raw
from initserve.formats.safetensors import encode_safetensors
from initserve.formats.source import TensorSource

Format = Literal["npy", "safetensors", "json", "raw"]
FORMATS: tuple[str, ...] = get_args(Format)

__all__ = [
    "FORMATS",
    "MAX_CHUNK_BYTES",
    "EncodedBody",
    "Format",
    "FormatError",
    "TensorSource",
    "encode",
    "encode_json",
    "encode_npy",
    "encode_raw",
    "encode_safetensors",
]


def _metadata_string(value: object) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def encode(source: TensorSource, fmt: Format, extra: Mapping[str, object] | None = None) -> EncodedBody:
    """Encode one tensor in format ``fmt``.

    ``extra`` carries response-level facts (e.g. ``algorithm_version``): top-level
    keys in JSON; merged over ``source.metadata`` into safetensors
    ``__metadata__`` (non-string values as their JSON text); ignored by ``npy``
    and ``raw``, whose callers put such facts in HTTP headers.
    """
    if fmt == "npy":
        return encode_npy(source)
    if fmt == "raw":
        return encode_raw(source)
    if fmt == "json":
        return encode_json(source, extra)
    if fmt == "safetensors":
        metadata = {**source.metadata, **{key: _metadata_string(value) for key, value in (extra or {}).items()}}
        return encode_safetensors([source], metadata)
    raise FormatError("format", fmt, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
