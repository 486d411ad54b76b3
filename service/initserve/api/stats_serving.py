"""Serving statistics: ``POST /v1/stats`` and ``POST /v1/stats/propagation``.

Both resolve exactly what ``/v1/tensor`` or ``/v1/model`` would serve, check the
same limits before any work, and answer JSON. Infinite support bounds (a normal
law) are written as ``null``.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.responses import Response

from initserve.api.errors import TooLarge
from initserve.api.model_schemas import ModelRequest, PropagationRequest
from initserve.api.model_serving import check_model_limits
from initserve.api.schemas import SpecBase, spec_arguments, window_arguments
from initserve.api.serving import ALGORITHM_HEADER, check_limits
from initserve.api.settings import Settings
from initserve.core import ALGORITHM_VERSION, SpecError, Tensor, resolve
from initserve.core.model import Model, resolve_model
from initserve.core.stats import ALPHA, tensor_statistics
from initserve.core.stats.propagation import propagate


def _finite(value: Any) -> Any:
    """Non-finite floats (unbounded supports) become ``None``, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _json(document: dict[str, Any]) -> Response:
    return Response(orjson.dumps(_finite(document)), media_type="application/json",
                    headers={ALGORITHM_HEADER: ALGORITHM_VERSION})


def stats_response(request: SpecBase | ModelRequest, bins: int, sample: int, settings: Settings) -> Response:
    """Statistics of one tensor, or of every tensor of a model (one row each)."""
    if isinstance(request, ModelRequest):
        for field in ("slices", "shards"):
            if getattr(request, field) is not None:
                raise SpecError(field, request.model_dump(mode="json", include={field})[field],
                                "/v1/stats describes whole tensors; slices and shards are for /v1/model")
        model = resolve_model(**request.core_arguments())
        check_model_limits(model, "safetensors", settings)
        tensors = [t.tensor for t in model.tensors]
    else:
        for field, value in window_arguments(request).items():
            if value is not None:
                name = "slice" if field == "slices" else field
                raise SpecError(name, value, "/v1/stats describes whole tensors; slice and shard are for /v1/tensor")
        tensor = resolve(**spec_arguments(request))
        check_limits(tensor, "npy", settings)
        tensors = [tensor]
    rows = [tensor_statistics(tensor, bins=bins, max_sample=sample) for tensor in tensors]
    return _json({"algorithm_version": ALGORITHM_VERSION, "alpha": ALPHA, "tensors": rows})


def propagation_response(request: PropagationRequest, settings: Settings) -> Response:
    """The signal-propagation report of the layers, within the settings' work budget."""
    def check(model: Model, batch: Tensor) -> None:
        check_model_limits(model, "safetensors", settings)
        try:
            check_limits(batch, "npy", settings)
        except TooLarge as error:
            raise TooLarge("input", error.value, f"the input batch: {error.message}") from None

    report = propagate(**request.core_arguments(), budget=settings.max_propagation_work, check=check)
    return _json({"algorithm_version": ALGORITHM_VERSION, **report})
