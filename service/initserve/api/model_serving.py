"""Serving a model: request → core model → limits → (checkpoint) → formats or manifest.

One code path for every answer of ``POST /v1/model``:

- ``safetensors`` (default): one streamed file; ``__metadata__`` holds the
  canonical request (``initserve.model``), ``initserve.algorithm_version`` and,
  with a checkpoint, the copied tensor names;
- ``npz``: a streamed ZIP of ``.npy`` members (``np.load`` keys are the names);
- ``json``: ``{"algorithm_version", "framework", "tensors": [{name, shape, dtype, data}]}``;
- ``manifest``: per tensor its name, shape, dtype, resolved initialization
  (canonical spec, fan_in/fan_out, gain, where it came from), its byte range in the
  safetensors answer of the same request, the SHA-256 of its bytes, and ``url``:
  the canonical ``GET /v1/tensor`` URL that answers exactly those bytes
  (``format=raw``; null for checkpoint tensors and for windows of Flax
  DenseGeneral kernels, whose shape is not their spec's). A rank can fetch the
  file, a range of it, or each tensor by URL (which caches share), and check it.

``tensors`` selects a subset by name (the safetensors layout, offsets and the
manifest are those of the subset; each tensor's bytes are unchanged).

``slices`` and ``shards`` (per tensor name, as /v1/tensor's ``slice`` and
``shard``) answer a window of those tensors: every format carries the windows'
shapes and bytes, and the manifest reports each tensor's ``window`` (its box, or
null), the windowed layout's offsets and the SHA-256 of the window's bytes. Not
available with a checkpoint upload (422).

Limits, before any value is generated: at most ``max_layers`` layers (checked
before the model is resolved), every tensor as for /v1/tensor (a window
counts its own elements; whole-matrix methods are held to the dense side of the
whole tensor), the total against ``max_model_elements``, and ``format=json``
against ``max_json_elements`` for the whole answer. Then the request is admitted
to the memory budget (:mod:`initserve.api.admission`). Tensors stream one after
another, and a whole-matrix tensor (orthogonal …) drops its float64 matrix once
streamed (:class:`OneAtATime`): a model holds one such matrix at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from threading import Lock
from typing import Any, Literal

import numpy as np
import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from initserve.api.admission import admit
from initserve.api.checkpoint import Applied, CheckpointTensor, Upload, apply_checkpoint
from initserve.api.conditional import answer
from initserve.api.errors import TooLarge
from initserve.api.estimates import model_estimate
from initserve.api.model_schemas import ModelRequest
from initserve.api.serving import ALGORITHM_HEADER, CACHE_CONTROL, check_limits, tensor_url
from initserve.api.settings import Settings
from initserve.core import ALGORITHM_VERSION, SpecError, Window, window_box
from initserve.core.model import Model, ModelTensor, resolve_model
from initserve.core.plans import Box
from initserve.formats import SourceView, TensorSource, encode_many
from initserve.formats.body import TensorPart
from initserve.formats.safetensors import safetensors_header

ModelAnswer = Literal["safetensors", "npz", "json", "manifest"]
Source = ModelTensor | CheckpointTensor
Windows = dict[str, Box]
DIGEST_CACHE_SIZE = 4096


class DigestCache:
    """SHA-256 of generated tensors, keyed by canonical spec (their bytes are a pure function of it)."""

    def __init__(self, size: int = DIGEST_CACHE_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._lock = Lock()

    def digest(self, source: Source, window: Window | None = None) -> str:
        """SHA-256 of ``source``'s bytes (of its ``window`` if given)."""
        if isinstance(source, CheckpointTensor):
            return _sha256(source)
        key = json.dumps(source.tensor.spec.canonical(), sort_keys=True)
        if window is not None:
            key += "\n" + json.dumps([list(pair) for pair in window.box])
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = _sha256(source if window is None else window)
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


def check_layers(layers: Sequence[Any], settings: Settings) -> None:
    """Raise :class:`TooLarge` (field ``layers``) for more than ``max_layers`` layers, before any is resolved.

    A recurrent layer counts each of its ``num_layers`` stacked layers, whose tensors the core builds one by
    one: ``{"type": "lstm", "num_layers": 10**12}`` was minutes of CPU and gigabytes before any limit."""
    count = sum(max(getattr(layer, "num_layers", 1), 1) for layer in layers)
    if count > settings.max_layers:
        raise TooLarge("layers", count, f"{count} layers exceed the limit of {settings.max_layers} "
                       "(INITSERVE_MAX_LAYERS)")


def check_model_limits(model: Model, fmt: ModelAnswer, settings: Settings, windows: Windows | None = None) -> None:
    """Raise :class:`TooLarge` when the model (its ``windows`` counted as such) exceeds a limit of ``settings``."""
    windows = windows or {}
    numel = 0
    for tensor in model.tensors:
        box = windows.get(tensor.name)
        try:
            check_limits(tensor.tensor, "safetensors", settings, box)
        except TooLarge as error:
            raise TooLarge(f"layers.{tensor.layer_index}", error.value, f"tensor {tensor.name!r}: {error.message}") \
                from None
        numel += tensor.numel if box is None else Window(tensor.tensor, box, tensor.shape).numel
    if numel > settings.max_model_elements:
        raise TooLarge("layers", numel, f"the model has {numel} elements, over the limit of "
                       f"{settings.max_model_elements} (INITSERVE_MAX_MODEL_ELEMENTS)")
    if fmt == "json" and numel > settings.max_json_elements:
        raise TooLarge("format", fmt, f"a {numel}-element model exceeds the format=json limit of "
                       f"{settings.max_json_elements} elements (INITSERVE_MAX_JSON_ELEMENTS); use safetensors or npz")


def _no_windows(request: ModelRequest) -> set[str]:
    """``slices``/``shards`` given empty: they select nothing, so they stay out of the answer's bytes."""
    return {field for field in ("slices", "shards") if getattr(request, field) == {}}


def _metadata(request: ModelRequest, applied: Applied | None) -> dict[str, str]:
    metadata = {
        "initserve.model": orjson.dumps(request.model_dump(mode="json", exclude_unset=True, exclude=_no_windows(
            request))).decode(),
        "initserve.algorithm_version": ALGORITHM_VERSION,
    }
    if applied is not None:
        metadata["initserve.checkpoint_copied"] = orjson.dumps(applied.copied).decode()
    return metadata


def resolve_windows(model: Model, request: ModelRequest) -> Windows:
    """The box of every tensor named in ``slices``/``shards`` (unknown names: 422 ``slices.<name>``)."""
    slices, shards = request.slices or {}, request.shards or {}
    shapes = {tensor.name: tensor.shape for tensor in model.tensors}
    for field, named in (("slices", slices), ("shards", shards)):
        for name in named:
            if name not in shapes:
                raise SpecError(f"{field}.{name}", name, "no tensor of the model has this name")
    windows: Windows = {}
    for name in [*slices, *(n for n in shards if n not in slices)]:
        shard = shards[name].model_dump() if name in shards else None
        try:
            box = window_box(shapes[name], slices.get(name), shard)
        except SpecError as error:
            field = error.field.replace("slice", f"slices.{name}", 1) if error.field == "slice" else \
                error.field.replace("shard", f"shards.{name}", 1)
            raise SpecError(field, error.value, error.message) from None
        if box is not None:
            windows[name] = box
    return windows


@dataclass(frozen=True)
class OneAtATime(SourceView[ModelTensor | Window]):
    """A whole-matrix model tensor (or its window) that drops its built matrix after each pass over it."""

    def iter_flat(self, start: int, stop: int) -> Iterator[np.ndarray]:
        try:
            yield from self.source.iter_flat(start, stop)
        finally:
            self.source.tensor.release()


def _streamed(source: Source, windows: Windows) -> TensorSource:
    """What the encoders stream for ``source``: its window, whole matrices dropped once streamed."""
    shown = _windowed(source, windows) or source
    if isinstance(shown, CheckpointTensor) or shown.tensor.dense_matrix is None:
        return shown
    return OneAtATime(shown)


def _windowed(source: Source, windows: Windows) -> Window | None:
    box = windows.get(source.name)
    if box is None or not isinstance(source, ModelTensor):
        return None
    return Window(source.tensor, box, source.shape)


def _url(source: Source, view: Window | None) -> str | None:
    """The canonical /v1/tensor URL of ``source`` (its window ``view``), where one answers the same bytes."""
    if not isinstance(source, ModelTensor) or (view is not None and source.shape != source.tensor.shape):
        return None
    return tensor_url(source.tensor, "raw", None if view is None else view.box)


def manifest(request: ModelRequest, sources: Sequence[Source], metadata: dict[str, str],
             applied: Applied | None, windows: Windows | None = None) -> dict[str, Any]:
    """The manifest document (computes each tensor's SHA-256, cached by spec and window)."""
    windows = windows or {}
    views = [_windowed(source, windows) for source in sources]
    encoded: list[TensorSource] = [view or source for source, view in zip(sources, views, strict=True)]
    header = len(safetensors_header(encoded, metadata))
    entries = []
    offset = 0
    for source, view, shown in zip(sources, views, encoded, strict=True):
        size = TensorPart(shown).nbytes
        entries.append({
            "name": source.name,
            "shape": list(shown.shape),
            "dtype": source.dtype,
            "layer": source.layer,
            "role": source.role,
            "init": source.describe() if isinstance(source, ModelTensor) else {"source": "checkpoint"},
            "window": None if view is None else [list(pair) for pair in view.box],
            "data_offsets": [offset, offset + size],
            "byte_range": [header + offset, header + offset + size],
            "sha256": DIGESTS.digest(source, view),
            "url": _url(source, view),
        })
        if isinstance(source, ModelTensor):
            source.tensor.release()  # one whole matrix at a time
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
    check_layers(request.layers, settings)
    model = resolve_model(**request.core_arguments())
    selected = model.select(names) if names else model
    windows = resolve_windows(model, request)
    if windows and upload is not None:
        field = "slices" if request.slices else "shards"
        raise SpecError(field, getattr(request, field), "slices and shards are not available with a checkpoint upload")
    check_model_limits(selected, fmt, settings, windows)
    applied = apply_checkpoint(model.tensors, upload, strict) if upload is not None else None
    wanted = {tensor.name for tensor in selected.tensors}
    sources = [s for s in (applied.sources if applied else model.tensors) if s.name in wanted]
    streamed = [_streamed(source, windows) for source in sources]
    with admit(http, settings, model_estimate([_windowed(s, windows) or s for s in sources], fmt)) as admission:
        metadata = _metadata(request, applied)
        headers = {ALGORITHM_HEADER: ALGORITHM_VERSION}
        if upload is None:
            key = orjson.dumps([ALGORITHM_VERSION, fmt, sorted(names), metadata["initserve.model"]])
            headers |= {"ETag": f'"{hashlib.sha256(key).hexdigest()[:32]}"', "Cache-Control": CACHE_CONTROL}
        if fmt == "manifest":
            body = orjson.dumps(manifest(request, sources, metadata, applied, windows))
            return Response(body, media_type="application/json", headers=headers, background=cleanup)
        extra = metadata if fmt != "json" else {"algorithm_version": ALGORITHM_VERSION, "framework": request.framework}
        encoded = encode_many(streamed, fmt, extra)
        return answer(encoded, headers, http.headers, http.method, binary=fmt != "json", background=cleanup,
                      streaming=admission.streaming)
