"""Serving a model: request → core model → limits → (checkpoint) → formats or manifest.

One code path for every answer of ``POST /v1/model``:

- ``safetensors`` (default): one streamed file; ``__metadata__`` holds the
  canonical request (``initserve.model``), ``initserve.algorithm_version`` and,
  with a checkpoint, the copied tensor names;
- ``npz``: a streamed ZIP of ``.npy`` members (``np.load`` keys are the names);
- ``json``: ``{"algorithm_version", "framework", "tensors": [{name, shape, dtype, data}]}``;
- ``manifest``: per tensor its name, shape, dtype, resolved initialization
  (canonical spec, fan_in/fan_out, gain, where it came from), its byte range in the
  safetensors answer of the same request, and the SHA-256 of its bytes. A
  rank can fetch the file (or a range of it) and check each tensor.

``tensors`` selects a subset by name (the safetensors layout, offsets and the
manifest are those of the subset; each tensor's bytes are unchanged).

Limits, before any value is generated: every tensor as for /v1/tensor, the total
against ``max_model_elements``, and ``format=json`` against ``max_json_elements``
for the whole model.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from threading import Lock
from typing import Any, Literal

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from initserve.api.checkpoint import Applied, CheckpointTensor, Upload, apply_checkpoint
from initserve.api.conditional import answer
from initserve.api.errors import TooLarge
from initserve.api.model_schemas import ModelRequest
from initserve.api.serving import ALGORITHM_HEADER, CACHE_CONTROL, check_limits
from initserve.api.settings import Settings
from initserve.core import ALGORITHM_VERSION
from initserve.core.model import Model, ModelTensor, resolve_model
from initserve.formats import TensorSource, encode_many
from initserve.formats.body import TensorPart
from initserve.formats.safetensors import safetensors_header

ModelAnswer = Literal["safetensors", "npz", "json", "manifest"]
Source = ModelTensor | CheckpointTensor
DIGEST_CACHE_SIZE = 4096


class DigestCache:
    """SHA-256 of generated tensors, keyed by canonical spec (their bytes are a pure function of it)."""

    def __init__(self, size: int = DIGEST_CACHE_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._lock = Lock()

    def digest(self, source: Source) -> str:
        if isinstance(source, CheckpointTensor):
            return _sha256(source)
        key = json.dumps(source.tensor.spec.canonical(), sort_keys=True)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = _sha256(source)
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value


def _sha256(source: TensorSource) -> str:
    digest = hashlib.sha256()
    part = TensorPart(source)
    for chunk in part.iter_bytes(0, part.nbytes):
        digest.update(chunk)
    return digest.hexdigest()


DIGESTS = DigestCache()


def check_model_limits(model: Model, fmt: ModelAnswer, settings: Settings) -> None:
    """Raise :class:`TooLarge` when the model exceeds a limit of ``settings`` (before any work)."""
    for tensor in model.tensors:
        try:
            check_limits(tensor.tensor, "safetensors", settings)
        except TooLarge as error:
            raise TooLarge(f"layers.{tensor.layer_index}", error.value, f"tensor {tensor.name!r}: {error.message}") \
                from None
    if model.numel > settings.max_model_elements:
        raise TooLarge("layers", model.numel, f"the model has {model.numel} elements, over the limit of "
                       f"{settings.max_model_elements} (INITSERVE_MAX_MODEL_ELEMENTS)")
    if fmt == "json" and model.numel > settings.max_json_elements:
        raise TooLarge("format", fmt, f"a {model.numel}-element model exceeds the format=json limit of "
                       f"{settings.max_json_elements} elements (INITSERVE_MAX_JSON_ELEMENTS); use safetensors or npz")


def _metadata(request: ModelRequest, applied: Applied | None) -> dict[str, str]:
    metadata = {
        "initserve.model": orjson.dumps(request.model_dump(mode="json", exclude_unset=True)).decode(),
        "initserve.algorithm_version": ALGORITHM_VERSION,
    }
    if applied is not None:
        metadata["initserve.checkpoint_copied"] = orjson.dumps(applied.copied).decode()
    return metadata


def manifest(request: ModelRequest, sources: Sequence[Source], metadata: dict[str, str],
             applied: Applied | None) -> dict[str, Any]:
    """The manifest document (computes each tensor's SHA-256, cached by spec)."""
    header = len(safetensors_header(sources, metadata))
    entries = []
    offset = 0
    for source in sources:
        size = TensorPart(source).nbytes
        entries.append({
            "name": source.name,
            "shape": list(source.shape),
            "dtype": source.dtype,
            "layer": source.layer,
            "role": source.role,
            "init": source.describe() if isinstance(source, ModelTensor) else {"source": "checkpoint"},
            "data_offsets": [offset, offset + size],
            "byte_range": [header + offset, header + offset + size],
            "sha256": DIGESTS.digest(source),
        })
        offset += size
    document: dict[str, Any] = {
        "algorithm_version": ALGORITHM_VERSION,
        "framework": request.framework,
        "safetensors_length": header + offset,
        "header_length": header,
        "tensors": entries,
    }
    if applied is not None:
        document["checkpoint"] = {"copied": applied.copied, "mismatched": applied.mismatched, "unused": applied.unused}
    return document


def model_response(request: ModelRequest, fmt: ModelAnswer, names: Sequence[str], settings: Settings,
                   http: Request, upload: Upload | None = None, strict: bool = True,
                   cleanup: BackgroundTask | None = None) -> Response:
    """Resolve, check and answer one model request (see the module docstring)."""
    model = resolve_model(**request.core_arguments())
    selected = model.select(names) if names else model
    check_model_limits(selected, fmt, settings)
    applied = apply_checkpoint(model.tensors, upload, strict) if upload is not None else None
    wanted = {tensor.name for tensor in selected.tensors}
    sources = [s for s in (applied.sources if applied else model.tensors) if s.name in wanted]
    metadata = _metadata(request, applied)
    headers = {ALGORITHM_HEADER: ALGORITHM_VERSION}
    if upload is None:
        key = orjson.dumps([ALGORITHM_VERSION, fmt, sorted(names), metadata["initserve.model"]])
        headers |= {"ETag": f'"{hashlib.sha256(key).hexdigest()[:32]}"', "Cache-Control": CACHE_CONTROL}
    if fmt == "manifest":
        body = orjson.dumps(manifest(request, sources, metadata, applied))
        return Response(body, media_type="application/json", headers=headers, background=cleanup)
    extra = metadata if fmt != "json" else {"algorithm_version": ALGORITHM_VERSION, "framework": request.framework}
    encoded = encode_many(sources, fmt, extra)
    return answer(encoded, headers, http.headers, http.method, binary=fmt != "json", background=cleanup)
