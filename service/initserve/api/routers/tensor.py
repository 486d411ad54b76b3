"""``POST /v1/tensor`` and ``GET /v1/tensor``: one tensor, two spellings, one code path."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from initserve.api.query import reject_unknown, spec_from_query
from initserve.api.schemas import (
    CONDITIONAL_RESPONSES,
    TensorRequest,
    problem_responses,
    spec_arguments,
    tensor_query_parameters,
    window_arguments,
)
from initserve.api.serving import check_version, tensor_response
from initserve.api.settings import SettingsDep
from initserve.formats import Format

router = APIRouter(prefix="/v1", tags=["tensor"])

FormatQuery = Annotated[
    Format,
    Query(
        alias="format",
        description="npy (default; no bfloat16), safetensors (unnamed tensors are stored as 'weight'), "
        "json ({name, shape, dtype, algorithm_version, data}), raw (little-endian bytes; "
        "X-Initserve-Shape and X-Initserve-Dtype headers)",
    ),
]

VersionQuery = Annotated[
    str | None,
    Query(
        alias="algorithm_version",
        description="optional: the generator version the caller expects (canonical URLs carry it, so a cache never "
        "mixes versions); another version than the service's is a 422",
    ),
]

_BINARY = {"schema": {"type": "string", "format": "binary"}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the tensor (or its slice/shard); headers X-Initserve-Algorithm-Version, X-Initserve-Spec (canonical spec "
        "of the whole tensor), Content-Location (the canonical GET URL of this answer: key caches on it) and, "
        "for a part, X-Initserve-Window ({\"box\": [[start, stop], …]})",
        "content": {"application/octet-stream": _BINARY, "application/json": {"schema": {"type": "object"}}},
    },
    **CONDITIONAL_RESPONSES,
    **problem_responses(
        {
            413: "over INITSERVE_MAX_ELEMENTS, the JSON cap or the dense-matrix side",
            422: "invalid specification, or a format that cannot carry it",
            503: "the memory budget is full, or generation ran past the time limit: retry after Retry-After seconds",
        }
    ),
}


@router.post("/tensor", response_class=Response, responses=RESPONSES, summary="One tensor from a JSON spec")
def post_tensor(spec: TensorRequest, request: Request, settings: SettingsDep, fmt: FormatQuery = "npy",
                version: VersionQuery = None) -> Response:
    """Generate the tensor described by the JSON body (discriminated by ``method``)."""
    reject_unknown(request.query_params, allowed=("format", "algorithm_version"))
    check_version(version)
    return tensor_response(spec_arguments(spec), fmt, settings, request, **window_arguments(spec))


@router.head("/tensor", include_in_schema=False)
@router.get(
    "/tensor",
    response_class=Response,
    responses=RESPONSES,
    summary="One tensor from query parameters (cacheable URL)",
    openapi_extra={"parameters": tensor_query_parameters()},
)
def get_tensor(request: Request, settings: SettingsDep, fmt: FormatQuery = "npy",
               version: VersionQuery = None) -> Response:
    """Same as ``POST /v1/tensor``: the spec's fields as query parameters (shape comma-separated).

    ``HEAD`` answers the headers alone (``Content-Length``, ``ETag``, the canonical ``Content-Location``)
    without generating anything."""
    check_version(version)
    spec = spec_from_query(request.query_params, ignore=("format", "algorithm_version"))
    return tensor_response(spec_arguments(spec), fmt, settings, request, **window_arguments(spec))
