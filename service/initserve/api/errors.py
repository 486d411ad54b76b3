"""The ONE table mapping errors to HTTP answers (``application/problem+json``, RFC 9457).

==================================  ======  ==========================================
exception                           status  meaning
==================================  ======  ==========================================
``core.SpecError``                  422     the spec cannot be generated (bad shape,
                                            unknown nonlinearity, std < 0, low >= high…)
``formats.FormatError``             422     the format cannot carry the tensor (bfloat16
                                            as npy, …). 422, not 406: the client chose
                                            the format with ``?format=``, not ``Accept``
``TooLarge`` (this module)          413     over a size limit; raised before any work
``core.WorkLimit``                  413     over a computation budget (propagation)
``Overloaded`` (this module)        503     the memory budget is full right now
                                            (``Retry-After``; :mod:`.admission`)
``core.deadline.DeadlineExceeded``  503     generation ran past ``request_timeout``
                                            (``Retry-After``); 503, not 504: no
                                            upstream timed out, this server is busy
``RequestValidationError``          422     wrong types, unknown fields, NaN/±inf…
                                            (also a JSON body FastAPI cannot read:
                                            not UTF-8, nested too deep; see
                                            :func:`unparsable_body`)
Starlette ``HTTPException``         as is   404 unknown path, 405 wrong verb (``Allow``:
                                            every method of the path)
anything else                       500     a bug: never turned into a 4xx
==================================  ======  ==========================================

Every 503 carries ``Retry-After: <settings.retry_after>``. Every body has
``type``, ``title``, ``status``, ``detail`` and the extension members
``field`` and ``value`` (the offending request field and what was
sent); ``detail`` reads ``field=value: what is accepted``. Validation problems
also list every error in ``errors``. Built-in ``ValueError`` is deliberately
absent: an unexpected one is our bug, hence a 500.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from initserve.core import METHODS, SpecError
from initserve.core.deadline import DeadlineExceeded
from initserve.core.errors import WorkLimit
from initserve.core.model import LAYER_TYPES
from initserve.errors import FieldError
from initserve.formats import FormatError

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:initserve:problem:"
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})
_METHOD_NAMES = frozenset(name for method in METHODS for name in (method.name, *method.aliases))
_LAYER_NAMES = frozenset([*(name for kind in LAYER_TYPES for name in (kind.name, *kind.aliases)), "tensor"])
_MAX_VALUE_CHARS = 200
_MAX_VALUE_DEPTH = 16
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict = 4, 64, 64, 64
_SHORT.maxstring = _SHORT.maxother = _MAX_VALUE_CHARS
_HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class TooLarge(FieldError):
    """A request over a configured size limit (checked before anything is generated)."""


class Overloaded(FieldError):
    """A request refused for now: the memory budget cannot take it until others finish (503)."""


@dataclass(frozen=True)
class Described:
    """What a problem body says about one error."""

    field: str
    value: Any
    message: str
    status: int | None = None  # overrides the table's status (HTTPException)
    errors: list[dict[str, Any]] = dataclass_field(default_factory=list)


@dataclass(frozen=True)
class ProblemType:
    """One row of the table."""

    status: int
    slug: str
    title: str
    describe: Callable[[Any, Request], Described]


class ProblemResponse(Response):
    """An RFC 9457 problem document (stdlib json: big integers such as a 2**64 seed survive)."""

    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` made JSON-safe: non-finite floats as strings, long texts, long or deep containers and odd objects
    shortened (a value nested 500 deep was a ``RecursionError``, a 500, rendering the 422 about it)."""
    if isinstance(value, list | tuple | dict) and depth >= _MAX_VALUE_DEPTH:
        return "…"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= _MAX_VALUE_CHARS else value[:_MAX_VALUE_CHARS] + "…"
    if isinstance(value, list | tuple) and len(value) <= 64:
        return [jsonable(item, depth + 1) for item in value]
    if isinstance(value, dict) and len(value) <= 64:
        return {str(key): jsonable(item, depth + 1) for key, item in value.items()}
    text = _SHORT.repr(value) if isinstance(value, list | tuple | dict) else repr(value)  # reprlib: bounded depth
    return text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "…"


def _domain(exc: FieldError, request: Request) -> Described:
    return Described(exc.field, exc.value, exc.message)


def _strip_tags(loc: list[Any]) -> list[Any]:
    """``loc`` without the union tags pydantic inserts (``layers.0.linear.init.weight.normal.std`` →
    ``layers.0.init.weight.std``): a layer type right after ``layers.N``, a method name first or right
    after ``init``, ``input``, ``init.KEY`` or ``scheme.ROLE``, the preset/rules tag after ``scheme``."""
    kept: list[Any] = []
    for item in loc:
        before = kept[-2:]
        layer_tag = item in _LAYER_NAMES and len(before) == 2 and before[0] == "layers" and isinstance(before[1], int)
        method_tag = item in _METHOD_NAMES and (
            not kept or before[-1:] in (["init"], ["input"]) or (len(before) == 2 and before[0] in ("init", "scheme"))
        )
        scheme_tag = item in ("preset", "rules") and before[-1:] == ["scheme"]
        if not (layer_tag or method_tag or scheme_tag):
            kept.append(item)
    return kept


def _pydantic_error(error: dict[str, Any]) -> Described:
    """One pydantic error with the union tags and the location prefix removed from its path (and the
    tensor-spec/model-spec tag of ``/v1/stats``)."""
    loc = list(error.get("loc", ()))
    if loc and loc[0] in _LOCATIONS:
        loc = loc[1:]
    if loc and loc[0] in ("tensor-spec", "model-spec"):
        loc = loc[1:]
    tag = loc[0] if loc and isinstance(loc[0], str) and loc[0] in _METHOD_NAMES else None
    loc = _strip_tags(loc)
    path = ".".join(map(str, loc))
    kind, message, value = error.get("type"), str(error.get("msg", "invalid")), error.get("input")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        ctx = error.get("ctx", {})
        discriminator = str(ctx.get("discriminator", "'method'")).strip("'")
        field = f"{path}.{discriminator}" if path else discriminator
        if kind == "union_tag_not_found":
            return Described(field, None, "is required")
        known = ", ".join(sorted(tag.strip(" '") for tag in str(ctx.get("expected_tags", "")).split(",")))
        return Described(field, ctx.get("tag"), f"unknown {discriminator}; known: {known}")
    if kind == "json_invalid":
        named = ".".join(item for item in loc if isinstance(item, str))  # FastAPI adds the error's character offset
        return Described(named or "body", None, f"invalid JSON: {error.get('ctx', {}).get('error', 'decode error')}")
    if kind == "missing":
        return Described(path, None, "is required")
    if kind == "extra_forbidden":
        message = "unknown field" if tag is None else f"unknown field for method {tag!r}"
    return Described(path or "body", value, message)


def _validation(exc: RequestValidationError, request: Request) -> Described:
    described = [_pydantic_error(error) for error in exc.errors()]
    first = described[0] if described else Described("body", None, "invalid request")
    errors = [{"field": d.field, "value": jsonable(d.value), "message": d.message} for d in described]
    return Described(first.field, first.value, first.message, errors=errors)


def _http(exc: HTTPException, request: Request) -> Described:
    return Described("path", request.url.path, str(exc.detail), status=exc.status_code)


def allowed_methods(request: Request) -> str:
    """The ``Allow`` value of a 405: every method a route serves at the request's path.

    Starlette's 405 names the methods of the first route matching the path only (``Allow: POST`` for
    ``/v1/tensor``, which also serves GET and HEAD); RFC 9110 §15.5.6 asks for all of the resource's."""
    routes = request.app.router.routes
    return ", ".join(method for method in _HTTP_METHODS
                     if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes))


def _unexpected(exc: Exception, request: Request) -> Described:
    return Described("", None, "internal server error")


def unparsable_body(exc: Exception) -> Exception:
    """``exc``, or the invalid-JSON validation error it stands for.

    FastAPI turns a JSON body that ``json.loads`` cannot read for another reason than a syntax error — bytes
    that are not UTF-8 (``UnicodeDecodeError``), nesting too deep for the parser (``RecursionError``) — into a
    bare ``HTTPException(400)`` caused by that error. It is the same client error as any other invalid JSON:
    a 422 ``invalid JSON`` naming ``body``, as ``POST /v1/model`` (which parses its body itself) answers it.
    """
    cause = exc.__cause__
    if not (isinstance(exc, HTTPException) and exc.status_code == 400 and isinstance(cause, ValueError | RecursionError)):
        return exc
    if isinstance(cause, UnicodeDecodeError):
        reason = f"not UTF-8 text ({cause.reason} at byte {cause.start})"
    elif isinstance(cause, RecursionError):
        reason = "nested too deeply"
    else:
        reason = str(cause) or type(cause).__name__
    return RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error",
                                    "input": None, "ctx": {"error": reason}}])


PROBLEMS: dict[type[Exception], ProblemType] = {
    SpecError: ProblemType(422, "invalid-spec", "Invalid tensor specification", _domain),
    FormatError: ProblemType(422, "unsupported-format", "Format cannot carry this tensor", _domain),
    TooLarge: ProblemType(413, "too-large", "Request too large", _domain),
    WorkLimit: ProblemType(413, "too-large", "Request too large", _domain),
    Overloaded: ProblemType(503, "overloaded", "Service overloaded", _domain),
    DeadlineExceeded: ProblemType(503, "timeout", "Request timed out", _domain),
    RequestValidationError: ProblemType(422, "invalid-request", "Invalid request", _validation),
    HTTPException: ProblemType(400, "http", "HTTP error", _http),
    Exception: ProblemType(500, "internal", "Internal server error", _unexpected),
}
"""Exception class → problem type. Lookup follows the exception's MRO."""


def problem_for(exc: Exception) -> ProblemType:
    """The table row of ``exc`` (the most specific class in its MRO)."""
    for cls in type(exc).__mro__:
        if cls in PROBLEMS:
            return PROBLEMS[cls]
    return PROBLEMS[Exception]  # pragma: no cover - every exception is an Exception


def _detail(described: Described) -> str:
    if not described.field:
        return described.message
    value = json.dumps(jsonable(described.value), ensure_ascii=False, allow_nan=False)
    return f"{described.field}={value}: {described.message}"


async def problem_response(request: Request, exc: Exception) -> Response:
    """Render ``exc`` as a problem+json answer according to :data:`PROBLEMS`."""
    exc = unparsable_body(exc)
    problem = problem_for(exc)
    described = problem.describe(exc, request)
    status = described.status or problem.status
    slug, title = (problem.slug, problem.title) if described.status is None else (
        f"http-{status}", HTTPStatus(status).phrase)
    headers = getattr(exc, "headers", None) if isinstance(exc, HTTPException) else None
    if status == 503:
        headers = {**(headers or {}), "Retry-After": str(request.app.state.settings.retry_after)}
    if status == 405:
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    return problem_answer(status, slug, title, described, headers)


def problem_answer(status: int, slug: str, title: str, described: Described,
                   headers: dict[str, str] | None = None) -> ProblemResponse:
    """The problem+json answer ``status`` of type ``slug`` about ``described``."""
    body: dict[str, Any] = {
        "type": _TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": _detail(described),
        "field": described.field,
        "value": jsonable(described.value),
    }
    if described.errors:
        body["errors"] = described.errors
    return ProblemResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register :func:`problem_response` for every class of :data:`PROBLEMS`."""
    for cls in PROBLEMS:
        app.add_exception_handler(cls, problem_response)
