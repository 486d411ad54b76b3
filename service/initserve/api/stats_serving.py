"""Serving statistics: ``POST /v1/stats`` and ``POST /v1/stats/propagation``.

Both resolve exactly what ``/v1/tensor`` or ``/v1/model`` would serve, check the
same limits before any work (``max_layers`` before the model is resolved), are
admitted to the memory budget (:mod:`initserve.api.admission`), and answer JSON.
Infinite support bounds (a normal law) are written as ``null``.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from initserve.api.admission import admit
from initserve.api.errors import TooLarge
from initserve.api.estimates import propagation_estimate, stats_estimate
from initserve.api.model_schemas import ModelSpec, PropagationRequest
from initserve.api.model_serving import check_layers, check_model_limits
from initserve.api.schemas import WholeSpecBase, spec_arguments
from initserve.api.serving import ALGORITHM_HEADER, check_limits
from initserve.api.settings import Settings
from initserve.core import ALGORITHM_VERSION, Tensor, resolve
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


def stats_response(request: WholeSpecBase | ModelSpec, bins: int, sample: int, settings: Settings,
                   http: Request) -> Response:
    """Statistics of one tensor, or of every tensor of a model (one row each, one tensor at a time)."""
    if isinstance(request, ModelSpec):
        check_layers(request.layers, settings)
        model = resolve_model(**request.core_arguments())
        check_model_limits(model, "safetensors", settings)
        tensors = [t.tensor for t in model.tensors]
    else:
        tensor = resolve(**spec_arguments(request))
        check_limits(tensor, "npy", settings)
        tensors = [tensor]
    rows = []
    with admit(http, settings, stats_estimate(tensors, sample)):
        for tensor in tensors:
            rows.append(tensor_statistics(tensor, bins=bins, max_sample=sample))
            tensor.release()  # a whole-matrix tensor's matrix: one at a time
    return _json({"algorithm_version": ALGORITHM_VERSION, "alpha": ALPHA, "tensors": rows})


def propagation_response(request: PropagationRequest, settings: Settings, http: Request) -> Response:
    """The signal-propagation report of the layers, within the settings' work and memory budgets."""
    check_layers(request.layers, settings)
    with ExitStack() as admitted:
        def check(model: Model, batch: Tensor) -> None:  # called once resolved, before anything is generated
            check_model_limits(model, "safetensors", settings)
            try:
                check_limits(batch, "npy", settings)
            except TooLarge as error:
                raise TooLarge("input", error.value, f"the input batch: {error.message}") from None
            admitted.enter_context(admit(http, settings, propagation_estimate(model, batch)))

        report = propagate(**request.core_arguments(), budget=settings.max_propagation_work, check=check)
    return _json({"algorithm_version": ALGORITHM_VERSION, **report})
