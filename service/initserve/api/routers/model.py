"""``POST /v1/model``: a whole model from a layer list, as JSON or as multipart with a checkpoint.

The body is read here (not by FastAPI) because one route takes two content
types: ``application/json`` (the :class:`ModelRequest`) and
``multipart/form-data`` with a ``model`` part (the same JSON) and an optional
``checkpoint`` file part (safetensors). Both are validated by the same model
and answered by :func:`~initserve.api.model_serving.model_response`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.responses import Response

from initserve.api.checkpoint import Upload
from initserve.api.errors import TooLarge
from initserve.api.model_schemas import ModelRequest
from initserve.api.model_serving import ModelAnswer, model_response
from initserve.api.query import query_dict, reject_unknown, split_shape
from initserve.api.schemas import CONDITIONAL_RESPONSES, problem_responses
from initserve.api.settings import SettingsDep

router = APIRouter(prefix="/v1", tags=["model"])

_REF = {"$ref": "#/components/schemas/ModelRequest"}
REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": _REF},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["model"],
                "properties": {
                    "model": {**_REF, "description": "the ModelRequest as JSON text (a form field, not a file)"},
                    "checkpoint": {"type": "string", "format": "binary",
                                   "description": "safetensors file: matching tensors are copied"},
                },
            },
            "encoding": {"model": {"contentType": "application/json"},
                         "checkpoint": {"contentType": "application/octet-stream"}},
        },
    },
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the model (safetensors, npz, json) or its manifest",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "application/zip": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": {"type": "object"}}},
    },
    **CONDITIONAL_RESPONSES,
    **problem_responses({413: "over INITSERVE_MAX_MODEL_ELEMENTS, a per-tensor limit, the JSON cap or the upload "
                         "limit", 422: "invalid model: unknown layer type, missing size, impossible shape, "
                         "checkpoint shape mismatch", 503: "the memory budget is full, or generation ran past "
                         "the time limit: retry after Retry-After seconds"}),
}
FormatQuery = Annotated[ModelAnswer, Query(alias="format", description="safetensors (default), npz, json, manifest")]
TensorsQuery = Annotated[str | None, Query(description="comma-separated tensor names: answer only these")]


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _validation_error(exc: ValidationError, prefix: tuple[str, ...]) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors(include_url=False)])


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request body, refused with a 413 as soon as it exceeds ``limit`` bytes (chunked bodies too)."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise TooLarge("body", received, f"request body over {limit} bytes (INITSERVE_MAX_UPLOAD_BYTES)")
        yield chunk


async def _form(request: Request, limit: int) -> FormData:
    """The multipart (or urlencoded) form, parsed from the size-limited body."""
    stream = _limited(request, limit)
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            return await MultiPartParser(request.headers, stream, max_files=1, max_fields=2).parse()
        return await FormParser(request.headers, stream, max_fields=2).parse()
    except MultiPartException as exc:
        raise RequestValidationError([{"type": "value_error", "loc": ("body",), "input": None,
                                       "msg": f"invalid multipart body: {exc.message}"}]) from None


async def _read(request: Request, settings: SettingsDep) -> tuple[ModelRequest, UploadFile | None, FormData | None]:
    """The model request, the checkpoint upload (if any), and the form to close afterwards."""
    limit = settings.max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise TooLarge("body", int(length), f"request body over {limit} bytes (INITSERVE_MAX_UPLOAD_BYTES)")
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        form = await _form(request, limit)
        text = form.get("model")
        checkpoint = form.get("checkpoint")
        try:
            if not isinstance(text, str):
                raise RequestValidationError([{"type": "missing", "loc": ("body", "model"), "input": None,
                                               "msg": "multipart requests need a 'model' part holding the JSON request"}])
            if checkpoint is not None and not isinstance(checkpoint, UploadFile):
                raise RequestValidationError([{"type": "value_error", "loc": ("body", "checkpoint"),
                                               "input": checkpoint, "msg": "must be a file part (safetensors)"}])
            try:
                return ModelRequest.model_validate_json(text), checkpoint, form
            except ValidationError as exc:
                raise _validation_error(exc, ("body", "model")) from None
        except Exception:
            await form.close()
            raise
    body = b"".join([chunk async for chunk in _limited(request, limit)])
    try:
        return ModelRequest.model_validate_json(body), None, None
    except ValidationError as exc:
        raise _validation_error(exc, ("body",)) from None


@router.post("/model", response_class=Response, responses=RESPONSES, summary="A whole model from a layer list",
             openapi_extra={"requestBody": REQUEST_BODY})
async def post_model(request: Request, settings: SettingsDep, fmt: FormatQuery = "safetensors",
                     tensors: TensorsQuery = None, strict: bool = True) -> Response:
    """Every tensor of the model, named and initialized as its framework (or scheme) does."""
    reject_unknown(request.query_params, allowed=("format", "tensors", "strict"))
    query_dict(request.query_params)  # each parameter once
    model, checkpoint, form = await _read(request, settings)
    upload = None
    if checkpoint is not None:
        upload = Upload(checkpoint.file, checkpoint.size or 0)
    cleanup = BackgroundTask(form.close) if form is not None else None
    names = split_shape(tensors) if tensors else []
    try:
        return await run_in_threadpool(model_response, model, fmt, names, settings, request, upload, strict, cleanup)
    except Exception:
        if form is not None:
            await form.close()
        raise


def add_request_schemas(document: dict[str, Any]) -> None:
    """Put :class:`ModelRequest` (and the models it uses) in the components the request body refers to."""
    schema = ModelRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs", {}))
    components["ModelRequest"] = schema
