"""Query strings to the argument dicts the JSON endpoints take.

``GET /v1/tensor?method=normal&shape=256,128&std=0.02`` is the same request
as ``POST /v1/tensor`` with ``{"method": "normal", "shape": [256, 128],
"std": 0.02}``: :func:`spec_from_query` turns the query into that dict and
validates it with the same wire models (lax mode, so strings are parsed).
``shape`` is a comma-separated list (the empty string is a 0-D tensor) and
``zero_rows`` a comma-separated list of ``start:stop`` ranges, as is ``slice``
(``slice=0:128,64:96``); ``shard`` is ``dim:index:count`` (``shard=0:1:4``). Each parameter
may appear once; unknown ones are refused by the models.

Problems are raised as :class:`RequestValidationError` with ``("query", name)``
locations, so they render like any other validation error.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError
from starlette.datastructures import QueryParams

from initserve.api.schemas import SpecBase, validate_query_spec

_DIMS: TypeAdapter[list[int]] = TypeAdapter(list[Annotated[int, Field(ge=0)]])


def _error(name: str, value: Any, message: str, kind: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("query", name), "msg": message, "input": value}])


def _query_errors(exc: ValidationError, prefix: tuple[str | int, ...] = ("query",)) -> RequestValidationError:
    return RequestValidationError(
        [{**error, "loc": (*prefix, *error["loc"])} for error in exc.errors(include_url=False)]
    )


def split_shape(text: str) -> list[str]:
    """``"256, 128"`` → ``["256", "128"]``; ``""`` → ``[]`` (a 0-D tensor)."""
    return [part.strip() for part in text.split(",")] if text.strip() else []


def parse_dims(text: str) -> list[int]:
    """A comma-separated list of non-negative integers (``""`` is ``[]``)."""
    try:
        return _DIMS.validate_python(split_shape(text), strict=False)
    except ValidationError as exc:
        raise _query_errors(exc, ("query", "shape")) from None


def query_dict(query: QueryParams, ignore: Collection[str] = ()) -> dict[str, Any]:
    """Each query parameter once, as a dict (``ignore``: parameters the route declares itself)."""
    arguments: dict[str, Any] = {}
    for name, value in query.multi_items():
        if name in ignore:
            continue
        if name in arguments:
            raise _error(name, query.getlist(name), "given more than once")
        arguments[name] = value
    return arguments


def reject_unknown(query: QueryParams, allowed: Collection[str]) -> None:
    """Refuse query parameters other than ``allowed`` (a typo must not pass silently)."""
    for name in query:
        if name not in allowed:
            raise _error(
                name, query[name], f"unknown query parameter; accepted: {', '.join(sorted(allowed))}", "extra_forbidden"
            )


def spec_from_query(query: QueryParams, ignore: Collection[str] = ("format",)) -> SpecBase:
    """The validated tensor spec described by ``query``."""
    arguments = query_dict(query, ignore)
    if "shape" in arguments:
        arguments["shape"] = split_shape(arguments["shape"])
    if "zero_rows" in arguments:
        arguments["zero_rows"] = [part.split(":", 1) if ":" in part else part
                                  for part in split_shape(arguments["zero_rows"])]
    if "slice" in arguments:
        arguments["slice"] = [part.split(":", 1) if ":" in part else part for part in split_shape(arguments["slice"])]
    if "shard" in arguments:
        parts = [part.strip() for part in arguments["shard"].split(":")]
        if len(parts) != 3:
            raise _error("shard", arguments["shard"], "must be dim:index:count, e.g. 0:1:4")
        arguments["shard"] = dict(zip(("dim", "index", "count"), parts, strict=True))
    try:
        return validate_query_spec(arguments)
    except ValidationError as exc:
        raise _query_errors(exc) from None
