"""The HTTP calls of both clients, built and validated without any I/O.

Each public method of :class:`~initserve_client.Client` and :class:`~initserve_client.AsyncClient` turns
its arguments into a :class:`Call` here (validation happens now: nothing is sent for an invalid request),
performs it, and decodes the answer with the functions at the end. The endpoints and query parameter names
come from :mod:`initserve_client.catalog`, which the contract test checks against the OpenAPI document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from initserve_client import catalog
from initserve_client.catalog import LAYOUTS, MODEL_FORMATS, NONLINEARITIES, TENSOR_FORMATS, Endpoint, MethodName
from initserve_client.errors import IntegrityError, InvalidSpec
from initserve_client.specs import (
    TensorSpec,
    TensorWindow,
    check_choice,
    check_float,
    check_int,
    check_shape,
    model_body,
    tensor_spec,
)

JSON_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True)
class Call:
    """One request: the endpoint, its query parameters (only those the endpoint declares) and a JSON body."""

    endpoint: Endpoint
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def __post_init__(self) -> None:
        unknown = set(self.query) - set(self.endpoint.query)
        if unknown:  # a bug of this client, not of the caller
            raise AssertionError(f"{self.endpoint.path} declares no query parameter {sorted(unknown)}")

    @property
    def content(self) -> bytes | None:
        """The body as compact JSON bytes (bodies are validated plain data: no NaN, no numpy)."""
        if self.body is None:
            return None
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()

    @property
    def headers(self) -> dict[str, str]:
        return JSON_HEADERS if self.body is not None else {}


def tensor_call(spec: TensorSpec, fmt: str = "raw", window: TensorWindow | None = None) -> Call:
    """``POST /v1/tensor?format=...`` with the spec as body, and the ``slice``/``shard`` of ``window``."""
    body = spec.to_json() | (window.to_json() if window is not None else {})
    return Call(catalog.TENSOR, {"format": check_choice(fmt, TENSOR_FORMATS, "format")}, body)


def model_call(body: dict[str, Any], fmt: str, tensors: str | None) -> Call:
    """``POST /v1/model?format=...[&tensors=...]``."""
    query = {"format": check_choice(fmt, MODEL_FORMATS, "format")}
    if tensors is not None:
        query["tensors"] = tensors
    return Call(catalog.MODEL, query, body)


def stats_body(method: MethodName | TensorSpec | None, shape: Sequence[int] | None,
               layers: Sequence[Mapping[str, Any]] | None, model_options: Mapping[str, Any],
               params: Mapping[str, Any]) -> dict[str, Any]:
    """The body of ``POST /v1/stats``: a tensor spec, or a model when ``layers`` is given (then ``params`` may
    only hold the model's ``seed`` and ``dtype``)."""
    if layers is None:
        if method is None:
            raise InvalidSpec("method", None, "is required: a method and a shape, a TensorSpec, or layers=")
        for key, value in model_options.items():
            if value is not None:
                raise InvalidSpec(key, value, "is a model option: only with layers=")
        return tensor_spec(method, shape, params).to_json()
    if method is not None or shape is not None:
        raise InvalidSpec("layers", "…", "pass either a tensor (method and shape, or a TensorSpec) or layers, not both")
    options = {key: value for key, value in model_options.items() if value is not None}
    for key, value in params.items():
        if key not in ("seed", "dtype"):
            raise InvalidSpec(key, value, "is not an option of a model (framework, scheme, seed, dtype, n_layer)")
        if value is not None:
            options[key] = value
    return model_body(layers, framework=options.get("framework", "torch"), scheme=options.get("scheme", "framework"),
                      seed=options.get("seed", 0), dtype=options.get("dtype", "float32"),
                      n_layer=options.get("n_layer"))


def stats_call(body: dict[str, Any], bins: int, sample: int | None) -> Call:
    """``POST /v1/stats?bins=...[&sample=...]``."""
    query = {"bins": str(check_int(bins, "bins"))}
    if sample is not None:
        query["sample"] = str(check_int(sample, "sample"))
    return Call(catalog.STATS, query, body)


def propagation_call(body: dict[str, Any]) -> Call:
    """``POST /v1/stats/propagation``."""
    return Call(catalog.PROPAGATION, {}, body)


def methods_call() -> Call:
    """``GET /v1/methods``."""
    return Call(catalog.METHODS_ENDPOINT)


def gain_call(nonlinearity: str, negative_slope: float | None) -> Call:
    """``GET /v1/gain?nonlinearity=...[&negative_slope=...]``."""
    query = {"nonlinearity": check_choice(nonlinearity, NONLINEARITIES, "nonlinearity")}
    if negative_slope is not None:
        query["negative_slope"] = repr(check_float(negative_slope, "negative_slope"))
    return Call(catalog.GAIN, query)


def fans_call(shape: Sequence[int], layout: str) -> Call:
    """``GET /v1/fans?shape=...&layout=...``."""
    dims = check_shape(shape)
    return Call(catalog.FANS, {"shape": ",".join(map(str, dims)), "layout": check_choice(layout, LAYOUTS, "layout")})


def json_answer(buffer: bytes | bytearray) -> Any:
    """A JSON answer (:class:`IntegrityError` when the body is not JSON)."""
    try:
        return json.loads(buffer)
    except ValueError as exc:
        raise IntegrityError(f"the service answered something that is not JSON ({exc})") from None


def json_object(buffer: bytes | bytearray) -> dict[str, Any]:
    """A JSON object answer."""
    document = json_answer(buffer)
    if not isinstance(document, dict):
        raise IntegrityError(f"expected a JSON object, the service answered a {type(document).__name__}")
    return document


def gain_value(buffer: bytes | bytearray) -> float:
    """The ``gain`` of a ``/v1/gain`` answer."""
    gain = json_object(buffer).get("gain")
    if isinstance(gain, bool) or not isinstance(gain, int | float):
        raise IntegrityError(f"/v1/gain answered no number: {gain!r}")
    return float(gain)


def methods_list(buffer: bytes | bytearray) -> list[dict[str, Any]]:
    """The ``/v1/methods`` catalogue."""
    document = json_answer(buffer)
    if not isinstance(document, list):
        raise IntegrityError("/v1/methods answered no list")
    return document
