"""Wire models (pydantic v2), generated from the core catalogue.

:data:`TensorRequest` is ONE discriminated union on ``method``: one model per
entry of :data:`initserve.core.METHODS`, whose ``method`` field is
``Literal[canonical, *aliases]``, with the common fields (shape, dtype, layout,
seed, name) and the method's own parameters (doc, default, choices and bounds
shown in OpenAPI).

Division of labour: these models check *types* only — unknown fields are
refused (``extra="forbid"``: a typo such as ``stddev`` never falls back to a
default), floats must be finite (NaN and ±inf refused, also as the strings
``"NaN"``/``"inf"``), choices are enums. Ranges and every other semantic rule
stay in the core (:func:`initserve.core.resolve`), the only semantic
validator; the bounds shown in OpenAPI are documentation of what it enforces.

JSON bodies are validated strictly (``"std": "0.5"`` is refused); query strings
(``GET /v1/tensor``) go through the same models in lax mode, which parses the
strings (:func:`validate_query_spec`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from initserve.core import DTYPES, LAYOUTS, METHODS, Method, Param
from initserve.core.dtypes import DType
from initserve.core.layout import Layout
from initserve.core.tensor import MAX_NDIM

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that refuses NaN and ±inf (numbers and strings alike)."""

SEED_SCHEMA: dict[str, Any] = {"minimum": 0, "format": "uint64"}
"""Seeds are 0 … 2^64−1. No ``maximum``: OpenAPI tooling stores bounds as doubles, and 2^64−1 would
round up to 2^64 (the core refuses it with a 422)."""
_KINDS: dict[str, Any] = {"float": FiniteFloat, "int": int, "bool": bool, "str": str, "ints": int | list[int]}


Pair = Annotated[list[int], Field(min_length=2, max_length=2)]
WINDOW_FIELDS = ("slice", "shard")
"""Request fields that choose a part of the tensor: not part of its canonical spec."""


class ShardSpec(BaseModel):
    """One part of ``torch.tensor_split(tensor, count, dim)``: the first ``n % count`` parts have one more element."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dim: int = Field(description="the dimension split (negative counts from the end, as torch)")
    index: int = Field(description="which part, 0 … count-1")
    count: int = Field(description="number of parts, >= 1")


class WholeSpecBase(BaseModel):
    """Fields every tensor specification has, whatever its method (``/v1/stats`` describes whole tensors)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    shape: list[int] = Field(
        description="dimensions, each >= 0; [] is a 0-D tensor. torch layout: [out, in, *kernel]; "
        "keras/jax: [*kernel, in, out]",
        examples=[[256, 128]],
        json_schema_extra={"items": {"type": "integer", "minimum": 0}, "maxItems": MAX_NDIM},  # the core checks
    )
    dtype: DType = Field(
        default="float32", description="float16 and bfloat16 are the float32 values rounded to nearest even"
    )
    layout: Layout = Field(default="torch", description="axis convention used for fans")
    seed: int = Field(default=0, description="0 … 2^64−1", json_schema_extra=SEED_SCHEMA)
    name: str = Field(
        default="",
        description="tensor name; with the seed it keys the random stream (safetensors key: 'weight' when empty)",
        json_schema_extra={"maxLength": 1024},
    )
    zero_rows: list[Annotated[list[int], Field(min_length=2, max_length=2)]] | None = Field(
        default=None,
        description="[start, stop) ranges along the first axis set to zero after the method fills the tensor "
        "(nn.Embedding's padding_idx p is [[p, p+1]]); GET form: '3:4,10:12'",
        examples=[[[0, 1]]],
    )


class SpecBase(WholeSpecBase):
    """A tensor specification of ``/v1/tensor``: the whole tensor's fields, and the part to answer."""

    slice: list[Pair] | None = Field(
        default=None,
        description="answer only this box: [start, stop) per leading dimension (missing trailing dimensions "
        "whole); not part of the spec (X-Initserve-Window says which part); GET form: '0:128,64:96'",
        examples=[[[0, 128], [64, 96]]],
    )
    shard: ShardSpec | None = Field(
        default=None,
        description="answer only part index of torch.tensor_split(tensor, count, dim) (within the slice if "
        "both are given); the parts concatenate to the whole tensor; GET form: 'dim:index:count'",
    )


def _bounds(param: Param) -> dict[str, Any]:
    """JSON-schema bounds documenting what the core enforces."""
    bounds: dict[str, Any] = {}
    if param.minimum is not None:
        bounds["exclusiveMinimum" if param.exclusive_minimum else "minimum"] = param.minimum
    if param.maximum is not None:
        bounds["maximum"] = param.maximum
    return bounds


def param_field(param: Param) -> tuple[Any, Any]:
    """The (annotation, FieldInfo) of one method parameter."""
    kind: Any = Literal[param.choices] if param.choices else _KINDS[param.kind]
    extra = _bounds(param)
    if param.required:
        return kind, Field(description=param.doc, json_schema_extra=extra)
    if param.default is None:
        return kind | None, Field(default=None, description=param.doc, json_schema_extra=extra)
    return kind, Field(default=param.default, description=param.doc, json_schema_extra=extra)


def camel(name: str) -> str:
    """``trunc_normal`` → ``TruncNormal``."""
    return "".join(part.capitalize() for part in name.split("_"))


class InitBase(BaseModel):
    """An initialization without a tensor: the method and its parameters (shape and name come from elsewhere)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def spec_model(method: Method, base: type[BaseModel] = SpecBase, suffix: str = "Spec") -> type[BaseModel]:
    """The wire model of one method, on ``base`` (:class:`SpecBase` for a tensor, :class:`WholeSpecBase` for a
    whole tensor, :class:`InitBase` for an init)."""
    clash = {param.name for param in method.params} & {*base.model_fields, "method"}
    if clash:
        raise RuntimeError(f"method {method.name!r} declares parameters that clash with common fields: {clash}")
    names: Any = Literal[(method.name, *method.aliases)]
    fields: dict[str, Any] = {
        "method": (names, Field(description=f"{method.formula} — {method.reference}")),
        **{param.name: param_field(param) for param in method.params},
    }
    return create_model(camel(method.name) + suffix, __base__=base, __doc__=f"{method.name}: {method.formula}",
                        **fields)


SPEC_MODELS: tuple[type[BaseModel], ...] = tuple(spec_model(method) for method in METHODS)
WHOLE_SPEC_MODELS: tuple[type[BaseModel], ...] = tuple(spec_model(method, WholeSpecBase, "WholeSpec")
                                                        for method in METHODS)
INIT_MODELS: tuple[type[BaseModel], ...] = tuple(spec_model(method, InitBase, "Init") for method in METHODS)

InitSpec = Annotated[Union[INIT_MODELS], Field(discriminator="method")]  # type: ignore[valid-type]  # noqa: UP007
"""An initialization (method and parameters, no shape): used by /v1/model's schemes and overrides."""

TensorRequest = Annotated[Union[SPEC_MODELS], Field(discriminator="method")]  # type: ignore[valid-type]  # noqa: UP007
"""A tensor specification: the union of every method's model, discriminated by ``method``."""

WholeTensorSpec = Annotated[Union[WHOLE_SPEC_MODELS], Field(discriminator="method")]  # type: ignore[valid-type]  # noqa: UP007
"""A whole tensor's specification (``/v1/stats``): :data:`TensorRequest` without ``slice`` and ``shard``."""

_ADAPTER: TypeAdapter[SpecBase] = TypeAdapter(TensorRequest)


def spec_arguments(spec: WholeSpecBase) -> dict[str, Any]:
    """The keyword arguments for :func:`initserve.core.resolve`: only what the caller set.

    Defaults are filled by the core, the single source of truth for them.
    """
    return spec.model_dump(exclude_unset=True, exclude=set(WINDOW_FIELDS))


def window_arguments(spec: SpecBase) -> dict[str, Any]:
    """The ``slice`` and ``shard`` the caller set (arguments of :func:`initserve.core.window_box`)."""
    data = spec.model_dump(exclude_unset=True, include=set(WINDOW_FIELDS))
    return {"slices": data.get("slice"), "shard": data.get("shard")}


def validate_query_spec(query: dict[str, Any]) -> SpecBase:
    """Validate a spec given as query strings (lax mode: ``"0.5"`` → 0.5, ``"true"`` → True).

    Raises :class:`pydantic.ValidationError`.
    """
    return _ADAPTER.validate_python(query, strict=False)


# --- answers of the catalogue and health endpoints --------------------------------


class ParameterInfo(BaseModel):
    """One parameter of a method, as declared in the core."""

    name: str
    kind: Literal["float", "int", "bool", "str", "ints"]
    required: bool
    default: float | int | bool | str | None = Field(description="null when required or optional without default")
    choices: list[str] | None = None
    minimum: float | None = None
    exclusive_minimum: bool = Field(default=False, description="true when the value must be strictly above minimum")
    maximum: float | None = None
    doc: str


class MethodInfo(BaseModel):
    """A catalogue entry."""

    name: str
    aliases: list[str]
    parameters: list[ParameterInfo]
    formula: str
    theory: str
    reference: str


class Gain(BaseModel):
    """Recommended gain of a nonlinearity."""

    nonlinearity: str
    negative_slope: float | None
    gain: float


class FanInfo(BaseModel):
    """Fans of a shape in a layout."""

    shape: list[int]
    layout: Layout
    fan_in: int
    fan_out: int
    receptive_field: int


class Health(BaseModel):
    """Liveness answer."""

    status: Literal["ok"]
    algorithm_version: str


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str = Field(description="URI naming the kind of problem, e.g. urn:initserve:problem:invalid-spec")
    title: str
    status: int
    detail: str = Field(description="`field=value: what is accepted`")
    field: str = Field(description="the offending request field (dotted path, e.g. shape.0)")
    value: Any = Field(description="what was sent for that field")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="every validation error (field, value, message)"
    )


# --- query-string documentation of GET /v1/tensor ---------------------------------

_JSON_TYPES = {"float": "number", "int": "integer", "bool": "boolean", "str": "string"}
_INT_TEXT = " *-?[0-9]+ *"
_PAIRS_TEXT = f"(?:{_INT_TEXT}:{_INT_TEXT}(?:,{_INT_TEXT}:{_INT_TEXT})*| *)"
QUERY_SYNTAX: dict[str, str] = {
    "shape": f"(?:{_INT_TEXT}(?:,{_INT_TEXT})*| *)",
    "zero_rows": _PAIRS_TEXT,
    "slice": _PAIRS_TEXT,
    "shard": f"{_INT_TEXT}:{_INT_TEXT}:{_INT_TEXT}",
}
"""Whole-value syntax of the list-valued query parameters (``GET /v1/tensor``, and ``shape`` of ``/v1/fans``):
ASCII integers separated by ``,`` (``:`` within a pair or a shard), spaces around them. The lax parse of
the integers would also take ``+3``, ``3.0``, ``3_0`` or tabs; :func:`initserve.api.query.check_syntax`
refuses what this syntax does not describe, so the documented pattern is exactly what is served. A minus
sign is syntax: the core refuses negative sizes and bounds itself, with its own message."""


def query_pattern(name: str) -> str:
    """The OpenAPI ``pattern`` of the list-valued query parameter ``name`` (:data:`QUERY_SYNTAX`, anchored)."""
    return f"^{QUERY_SYNTAX[name]}$"


def _query_parameter(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def tensor_query_parameters() -> list[dict[str, Any]]:
    """OpenAPI parameters of ``GET /v1/tensor``: the common fields, then every method parameter once."""
    common = SpecBase.model_fields
    names = sorted(name for method in METHODS for name in (method.name, *method.aliases))
    parameters = [
        _query_parameter("method", {"type": "string", "enum": names}, "initialization method or alias", True),
        _query_parameter(
            "shape",
            {"type": "string", "example": "256,128", "pattern": query_pattern("shape")},
            "comma-separated dimensions; empty for a 0-D tensor",
            True,
        ),
        _query_parameter(
            "dtype", {"type": "string", "enum": list(DTYPES), "default": "float32"}, common["dtype"].description or ""
        ),
        _query_parameter(
            "layout", {"type": "string", "enum": list(LAYOUTS), "default": "torch"}, common["layout"].description or ""
        ),
        _query_parameter("seed", {"type": "integer", **SEED_SCHEMA, "default": 0}, "0 … 2^64−1"),
        _query_parameter("name", {"type": "string", "default": ""}, common["name"].description or ""),
        _query_parameter("zero_rows", {"type": "string", "example": "0:1", "pattern": query_pattern("zero_rows")},
                         common["zero_rows"].description or ""),
        _query_parameter("slice", {"type": "string", "example": "0:128,64:96", "pattern": query_pattern("slice")},
                         common["slice"].description or ""),
        _query_parameter("shard", {"type": "string", "example": "0:1:4", "pattern": query_pattern("shard")},
                         common["shard"].description or ""),
    ]
    users: dict[str, list[str]] = {}
    declared: dict[str, Param] = {}
    for method in METHODS:
        for param in method.params:
            users.setdefault(param.name, []).append(method.name)
            declared.setdefault(param.name, param)
    for name in sorted(declared):
        param = declared[name]
        schema: dict[str, Any] = {"type": _JSON_TYPES[param.kind]}
        if param.choices:
            schema["enum"] = list(param.choices)
        parameters.append(_query_parameter(name, schema, f"{param.doc} (methods: {', '.join(users[name])})"))
    return parameters


def problem_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem+json answers with these status codes."""
    schema = Problem.model_json_schema()
    return {
        status: {"description": description, "content": {"application/problem+json": {"schema": schema}}}
        for status, description in descriptions.items()
    }


CONDITIONAL_RESPONSES: dict[int | str, dict[str, Any]] = {
    206: {"description": "the byte range asked for with Range (Content-Range tells which)",
          "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    304: {"description": "GET with If-None-Match naming the answer's ETag: not modified"},
    412: {"description": "POST with If-None-Match naming the answer's ETag"},
    **problem_responses({416: "Range starts beyond the end (Content-Range: bytes */length)"}),
}
"""OpenAPI entries of the conditional and range answers (:mod:`initserve.api.conditional`)."""
