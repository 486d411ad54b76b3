"""Serving one tensor: spec → limits → core → formats → streamed HTTP answer.

The routers parse (JSON body or query string) into one argument dict and call
:func:`tensor_response`; everything after parsing is this one code path.

Limits (:func:`check_limits`) are checked on the resolved spec, before any
value is generated: more than ``max_elements`` elements, a JSON answer above
``max_json_elements`` (both counted on the answer: the window when ``slice`` or
``shard`` is given), or a matrix side above ``max_dense_side`` for the
methods that build their whole matrix (orthogonal, sparse,
delta_orthogonal; they build it whatever the window) are
:class:`~initserve.api.errors.TooLarge` (413).

Then the request is admitted to the memory budget (:mod:`initserve.api.admission`:
503 when full), the matrix of a whole-matrix method is built before the headers
go out (so running past ``request_timeout`` there is a 503, not a cut stream),
and the body streams chunk by chunk on the request's generation clock.

``slice``/``shard`` answer a :class:`~initserve.core.Window` of the tensor: the
encoded shapes are the window's, ``X-Initserve-Window`` says which box
(``{"box":[[start,stop],…]}``), safetensors metadata carries it as
``initserve.window``, and the ETag covers it. ``X-Initserve-Spec`` stays the
whole tensor's canonical spec.

Response headers:

- ``X-Initserve-Algorithm-Version``: the generator version (also the
  ``algorithm_version`` key of JSON answers, and safetensors metadata);
- ``X-Initserve-Spec``: the canonical spec, compact JSON (ASCII);
- ``X-Initserve-Shape`` / ``X-Initserve-Dtype``: with ``format=raw``;
- ``Content-Location``: the canonical GET URL of this answer
  (``/v1/tensor?`` + :func:`~initserve.api.query.canonical_query`), whatever form
  the request took: the one URL HTTP caches should key this answer on;
- ``ETag`` (strong: the bytes are a pure function of spec, format and algorithm
  version) and ``Cache-Control: immutable``; ``If-None-Match``, ``Range`` and
  ``If-Range`` are honoured (:mod:`initserve.api.conditional`).

safetensors needs a non-empty tensor name: a tensor whose spec name is ``""``
is stored under the key ``"weight"`` (the spec in the metadata keeps ``""``,
so the values are those of the unnamed tensor).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from initserve.api.admission import admit
from initserve.api.conditional import answer
from initserve.api.errors import TooLarge
from initserve.api.estimates import tensor_estimate
from initserve.api.query import canonical_query
from initserve.api.settings import Settings
from initserve.core import ALGORITHM_VERSION, SpecError, Tensor, Window, box_json, resolve, window_box
from initserve.core.plans import Box
from initserve.formats import Format, SourceView, TensorSource, encode

ALGORITHM_HEADER = "X-Initserve-Algorithm-Version"
SPEC_HEADER = "X-Initserve-Spec"
WINDOW_HEADER = "X-Initserve-Window"
SAFETENSORS_DEFAULT_KEY = "weight"
CACHE_CONTROL = "public, max-age=31536000, immutable"
TENSOR_PATH = "/v1/tensor"


@dataclass(frozen=True)
class NamedSource(SourceView[Tensor | Window]):
    """A tensor (or window) presented to the encoders under another name (safetensors key)."""

    key: str

    @property
    def name(self) -> str:
        return self.key


def encoder_source(tensor: Tensor | Window, fmt: Format) -> TensorSource:
    """The tensor as the encoders should see it (unnamed tensors become ``"weight"`` in safetensors)."""
    if fmt == "safetensors" and not tensor.name:
        return NamedSource(tensor, SAFETENSORS_DEFAULT_KEY)
    return tensor


def check_limits(tensor: Tensor, fmt: Format, settings: Settings, box: Box | None = None) -> None:
    """Raise :class:`TooLarge` when serving ``tensor`` (its ``box`` if given) as ``fmt`` exceeds a limit."""
    shape = list(tensor.shape)
    numel = tensor.numel if box is None else Window(tensor, box).numel
    what = "tensor" if box is None else "window"
    if numel > settings.max_elements:
        raise TooLarge(
            "shape",
            shape,
            f"{numel} elements{'' if box is None else ' in the window'} exceed the limit of "
            f"{settings.max_elements} (INITSERVE_MAX_ELEMENTS)",
        )
    if fmt == "json" and numel > settings.max_json_elements:
        raise TooLarge(
            "format",
            fmt,
            f"a {numel}-element {what} exceeds the format=json limit of "
            f"{settings.max_json_elements} elements (INITSERVE_MAX_JSON_ELEMENTS); "
            "use format=npy, safetensors or raw",
        )
    sides = tensor.dense_matrix
    if sides is not None and max(sides) > settings.max_dense_side:
        raise TooLarge(
            "shape",
            shape,
            f"method {tensor.spec.method!r} builds a {sides[0]}×{sides[1]} matrix; "
            f"sides are limited to {settings.max_dense_side} (INITSERVE_MAX_DENSE_SIDE)",
        )


def check_version(version: str | None) -> None:
    """Refuse (422) a request that expects another ``algorithm_version`` than this service generates."""
    if version is not None and version != ALGORITHM_VERSION:
        raise SpecError("algorithm_version", version, f"this service generates algorithm_version {ALGORITHM_VERSION}; "
                        "the bytes of another version are not available here")


def tensor_url(tensor: Tensor, fmt: Format, box: Box | None = None) -> str:
    """The canonical ``GET /v1/tensor`` URL (path and query) of ``tensor`` (its ``box``) as ``fmt``."""
    return f"{TENSOR_PATH}?{canonical_query(tensor.spec.canonical(), fmt, box, ALGORITHM_VERSION)}"


def spec_json(tensor: Tensor) -> str:
    """The canonical spec as compact ASCII JSON."""
    return json.dumps(tensor.spec.canonical(), separators=(",", ":"))


def tensor_response(arguments: dict[str, Any], fmt: Format, settings: Settings, request: Request,
                    slices: Any = None, shard: Any = None) -> Response:
    """Resolve, check and encode one tensor (or its ``slices``/``shard`` window); stream it (or the range,
    or 304) as the request's headers ask."""
    tensor = resolve(**arguments)
    box = window_box(tensor.shape, slices, shard)
    check_limits(tensor, fmt, settings, box)
    source = tensor if box is None else Window(tensor, box)
    with admit(request, settings, tensor_estimate(source, fmt), prepare=tensor.build) as admission:
        return _encoded(tensor, source, box, fmt, request, admission.streaming)


def _encoded(tensor: Tensor, source: Tensor | Window, box: Box | None, fmt: Format, request: Request,
             streaming: Callable[..., Response]) -> Response:
    """The answer of an admitted tensor request (``format=json`` generates everything here)."""
    extra = {"algorithm_version": ALGORITHM_VERSION} if fmt == "json" else None  # metadata/headers carry it otherwise
    body = encode(encoder_source(source, fmt), fmt, extra)
    canonical = spec_json(tensor)
    window = "" if box is None else box_json(box)
    key = f"{ALGORITHM_VERSION}\n{fmt}\n{canonical}" + (f"\n{window}" if window else "")
    etag = hashlib.sha256(key.encode()).hexdigest()[:32]
    headers = {
        ALGORITHM_HEADER: ALGORITHM_VERSION,
        SPEC_HEADER: canonical,
        "ETag": f'"{etag}"',
        "Cache-Control": CACHE_CONTROL,
        "Content-Location": tensor_url(tensor, fmt, box),
    }
    if window:
        headers[WINDOW_HEADER] = window
    return answer(body, headers, request.headers, request.method, binary=fmt != "json", streaming=streaming)
