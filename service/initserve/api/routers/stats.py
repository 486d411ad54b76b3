"""``POST /v1/stats`` and ``POST /v1/stats/propagation``: how initializations compare with their theory."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from initserve.api.model_schemas import PropagationRequest, StatsRequest
from initserve.api.query import query_dict, reject_unknown
from initserve.api.schemas import problem_responses
from initserve.api.settings import SettingsDep
from initserve.api.stats_serving import propagation_response, stats_response
from initserve.core.stats.summary import DEFAULT_BINS, MAX_SAMPLE

router = APIRouter(prefix="/v1", tags=["stats"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the report (JSON)", "content": {"application/json": {"schema": {"type": "object"}}}},
    **problem_responses({413: "over a size limit or the propagation budget", 422: "invalid specification",
                         503: "the memory budget is full, or generation ran past the time limit: retry after "
                         "Retry-After seconds"}),
}
BinsQuery = Annotated[int, Query(ge=1, le=1000, description="histogram bins")]
SampleQuery = Annotated[int, Query(ge=2, le=1 << 22, description="largest sample; bigger tensors are subsampled "
                                   "at flat indices ⌊k·n/sample⌋")]


@router.post("/stats", response_class=Response, responses=RESPONSES,
             summary="Empirical statistics of a tensor (or of each tensor of a model) against theory")
def post_stats(request: StatsRequest, http: Request, settings: SettingsDep, bins: BinsQuery = DEFAULT_BINS,
               sample: SampleQuery = MAX_SAMPLE) -> Response:
    """The body is a tensor spec (as /v1/tensor) or a model (as /v1/model, recognised by ``layers``)."""
    reject_unknown(http.query_params, allowed=("bins", "sample"))
    query_dict(http.query_params)
    return stats_response(request, bins, sample, settings, http)


@router.post("/stats/propagation", response_class=Response, responses=RESPONSES,
             summary="Signal propagation through a stack of layers: activations forward, gradients backward")
async def post_propagation(request: PropagationRequest, http: Request, settings: SettingsDep) -> Response:
    """Per layer: activation mean/std, saturated or dead units, gradient std, and the mean-field theory."""
    reject_unknown(http.query_params, allowed=())
    return await run_in_threadpool(propagation_response, request, settings, http)
