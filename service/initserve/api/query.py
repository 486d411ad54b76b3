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

import math
import re
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote

from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError
from starlette.datastructures import QueryParams

from initserve.api.schemas import QUERY_SYNTAX, SpecBase, query_pattern, validate_query_spec
from initserve.core.plans import Box

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
        dims = _DIMS.validate_python(split_shape(text), strict=False)
    except ValidationError as exc:
        raise _query_errors(exc, ("query", "shape")) from None
    check_syntax("shape", text)
    return dims


def check_syntax(name: str, text: str) -> None:
    """Refuse a list-valued parameter that the lax parse took but :data:`~initserve.api.schemas.QUERY_SYNTAX`
    (the documented pattern) does not describe: ``+3``, ``3.0``, ``3_0``, tabs… Called after the parse, whose
    errors name the offending item (``shape.1``)."""
    if re.fullmatch(QUERY_SYNTAX[name], text) is None:
        raise _error(name, text, f"must match {query_pattern(name)} (ASCII integers)")


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
    texts = {name: arguments[name] for name in QUERY_SYNTAX if name in arguments}
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
        spec = validate_query_spec(arguments)
    except ValidationError as exc:
        raise _query_errors(exc) from None
    for name, text in texts.items():
        check_syntax(name, text)
    return spec


# --- the canonical query string: one URL per (spec, format, window), so HTTP caches key on it -------------

UNESCAPED = ",:"
"""Characters kept as they are besides RFC 3986's unreserved set (``A-Z a-z 0-9 - . _ ~``)."""


def format_number(value: float) -> str:
    """``value`` as ECMAScript's ``Number::toString`` writes it (JavaScript's ``String(x)``), but ``-0`` for −0.0.

    The digits are the shortest that read back as the same float64 (Python's ``repr``); the layout is
    ECMAScript's: ``2``, ``0.02``, ``0.000001``, ``1e-7``, ``1.5e+22``.
    """
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    exact = Decimal(repr(abs(value))).normalize()  # repr: the shortest digits that read back as value
    _, digit_tuple, exponent = exact.as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = int(exponent) + k  # value = 0.digits × 10^n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = f"0.{'0' * -n}{digits}"
    else:
        e = n - 1
        text = f"{digits[0]}{'.' + digits[1:] if k > 1 else ''}e{'+' if e >= 0 else '-'}{abs(e)}"
    return ("-" if value < 0 else "") + text


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):  # shape: 4,3 ; zero_rows and slice: 0:1,5:6
        return ",".join(":".join(map(str, item)) if isinstance(item, list | tuple) else str(item) for item in value)
    raise TypeError(f"no query form for {value!r}")


def canonical_query(canonical: Mapping[str, Any], fmt: str, box: Box | None, algorithm_version: str) -> str:
    """The canonical query string of ``GET /v1/tensor`` for a canonical spec, a format, a window and a version.

    Every field of the canonical spec (``params`` flattened), ``format``, ``algorithm_version`` (so that a
    cache never mixes the bytes of two versions), and ``slice`` (the window's box, whether it was asked
    for as a slice or a shard) when there is one; names sorted; values as
    :func:`_query_value` writes them, percent-encoded as UTF-8 except RFC 3986 unreserved characters
    and ``,`` ``:``. Equal requests get equal strings, and the string reads back as the same request.
    """
    fields = {key: value for key, value in canonical.items() if key != "params"}
    fields |= dict(canonical.get("params", {}))
    fields["format"] = fmt
    fields["algorithm_version"] = algorithm_version
    if box is not None:
        fields["slice"] = [list(pair) for pair in box]
    return "&".join(f"{quote(key, safe='')}={quote(_query_value(fields[key]), safe=UNESCAPED)}"
                    for key in sorted(fields))
