"""``/readyz`` (readiness) and ``/metrics`` (Prometheus), next to ``/healthz`` (liveness).

``/healthz`` says the process answers; ``/readyz`` says it should get new requests: 503 once the
server is shutting down (:func:`initserve.api.observability.is_ready`), so that a load balancer
stops sending before the process is gone. Both are open without an API key and take no rate-limit
token (:data:`initserve.api.access.OPEN_PATHS`).

``/metrics`` is left out of the OpenAPI document: it is for Prometheus, whose text format is
specified by Prometheus, not by this API (and a generated client has no use for it). It is a plain
``def``: with several workers it reads every worker's metric files, which is file I/O best kept off
the event loop.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.responses import Response

from initserve.api.errors import Described, problem_answer
from initserve.api.observability import is_ready, render_metrics
from initserve.api.schemas import problem_responses
from initserve.core import ALGORITHM_VERSION

router = APIRouter(tags=["operations"])


class Readiness(BaseModel):
    """Readiness answer."""

    status: Literal["ready"]
    algorithm_version: str


@router.get("/readyz", summary="Readiness", response_model=Readiness,
            responses=problem_responses({503: "shutting down: send new requests elsewhere"}))
async def readyz(request: Request) -> Response | Readiness:
    """Ready for new requests: 200 while serving, 503 problem+json once shutdown has begun."""
    if not is_ready(request.app):
        return problem_answer(503, "not-ready", "Service Unavailable",
                              Described("", None, "shutting down: send new requests elsewhere"))
    return Readiness(status="ready", algorithm_version=ALGORITHM_VERSION)


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Every metric of :mod:`initserve.api.metrics` (of all workers) in the Prometheus text format."""
    return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)
