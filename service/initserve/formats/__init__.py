"""Output formats: lazily generated tensors to byte streams of known length.

Two entry points dispatch on the ``format`` query parameter. :func:`encode`
writes one tensor:

- ``npy``: NumPy ``.npy`` (:mod:`initserve.formats.npy`);
- ``safetensors``: safetensors, one or many tensors (:mod:`initserve.formats.safetensors`);
- ``json``: ``{"name", "shape", "dtype", "data"}`` (:mod:`initserve.formats.json_format`);
- ``raw``: the little-endian buffer, shape and dtype in headers (:mod:`initserve.formats.raw`).

:func:`encode_many` writes many named tensors (a whole model):

- ``safetensors``: one safetensors file;
- ``npz``: an uncompressed NumPy ``.npz`` archive (:mod:`initserve.formats.npz`);
- ``json``: ``{..., "tensors": [{"name", "shape", "dtype", "data"}, ...]}``.

This package knows nothing of HTTP frameworks nor of the numerics core: it
consumes any :class:`TensorSource` and produces an :class:`EncodedBody`.
Errors a client can cause are :class:`FormatError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, get_args

import orjson

from initserve.formats.body import MAX_CHUNK_BYTES, Chunk, EncodedBody
from initserve.formats.errors import FormatError
from initserve.formats.json_format import encode_json, encode_json_many
from initserve.formats.npy import encode_npy
from initserve.formats.npz import encode_npz
from initserve.formats.raw import encode_raw
from initserve.formats.safetensors import encode_safetensors
from initserve.formats.source import SourceView, TensorSource

Format = Literal["npy", "safetensors", "json", "raw"]
FORMATS: tuple[str, ...] = get_args(Format)
ModelFormat = Literal["safetensors", "npz", "json"]
MODEL_FORMATS: tuple[str, ...] = get_args(ModelFormat)

__all__ = [
    "FORMATS",
    "MAX_CHUNK_BYTES",
    "MODEL_FORMATS",
    "Chunk",
    "EncodedBody",
    "Format",
    "FormatError",
    "ModelFormat",
    "SourceView",
    "TensorSource",
    "encode",
    "encode_json",
    "encode_json_many",
    "encode_many",
    "encode_npy",
    "encode_npz",
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


def encode_many(sources: Sequence[TensorSource], fmt: ModelFormat, metadata: Mapping[str, str]) -> EncodedBody:
    """Encode ``sources``, in order, as one document in model format ``fmt``.

    ``metadata`` is the safetensors ``__metadata__``, the top-level keys before
    ``"tensors"`` in JSON, and is ignored by ``npz``, whose callers put such
    facts in HTTP headers.
    """
    if fmt == "safetensors":
        return encode_safetensors(sources, metadata)
    if fmt == "npz":
        return encode_npz(sources)
    if fmt == "json":
        return encode_json_many(sources, metadata)
    raise FormatError("format", fmt, f"unknown model format {fmt!r}; expected one of {', '.join(MODEL_FORMATS)}")
