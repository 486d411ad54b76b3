"""The catalogue: methods and their parameters, the gain table, fans of a shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from initserve.api.query import parse_dims, query_dict, reject_unknown
from initserve.api.schemas import FanInfo, Gain, MethodInfo, ParameterInfo, problem_responses, query_pattern
from initserve.core import METHODS, NONLINEARITIES, Method, Param, calculate_gain, compute_fans
from initserve.core.layout import Layout

router = APIRouter(prefix="/v1", tags=["catalogue"])
_PROBLEMS = problem_responses({422: "invalid query"})


def parameter_info(param: Param) -> ParameterInfo:
    """The wire form of one declared parameter."""
    return ParameterInfo(
        name=param.name,
        kind=param.kind,
        required=param.required,
        default=None if param.required else param.default,
        choices=list(param.choices) if param.choices else None,
        minimum=param.minimum,
        exclusive_minimum=param.exclusive_minimum,
        maximum=param.maximum,
        doc=param.doc,
    )


def method_info(method: Method) -> MethodInfo:
    """The wire form of one catalogue entry."""
    return MethodInfo(
        name=method.name,
        aliases=list(method.aliases),
        parameters=[parameter_info(param) for param in method.params],
        formula=method.formula,
        theory=method.theory,
        reference=method.reference,
    )


@router.get("/methods", summary="Every initialization method, its parameters and formula")
async def methods() -> list[MethodInfo]:
    """The catalogue, in a stable order."""
    return [method_info(method) for method in METHODS]


@router.get("/gain", responses=_PROBLEMS, summary="Recommended gain of a nonlinearity")
def gain(
    nonlinearity: Annotated[str, Query(description=f"one of: {', '.join(NONLINEARITIES)}",
                                       json_schema_extra={"enum": list(NONLINEARITIES)})],  # the core checks
    negative_slope: Annotated[
        float | None, Query(allow_inf_nan=False, description="leaky_relu slope (default 0.01)")
    ] = None,
    *,
    request: Request,
) -> Gain:
    """PyTorch's ``calculate_gain`` table, plus second-moment gains for gelu, silu, elu, softplus, mish."""
    reject_unknown(request.query_params, allowed=("nonlinearity", "negative_slope"))  # a typo must not pass silently
    query_dict(request.query_params)  # each parameter once
    return Gain(
        nonlinearity=nonlinearity, negative_slope=negative_slope, gain=calculate_gain(nonlinearity, negative_slope)
    )


@router.get("/fans", responses=_PROBLEMS, summary="fan_in, fan_out and receptive field of a shape")
async def fans(
    shape: Annotated[str, Query(description="comma-separated dimensions, e.g. 64,3,3,3",
                                json_schema_extra={"pattern": query_pattern("shape")})],  # parse_dims checks
    layout: Annotated[Layout, Query(description="torch: [out, in, *kernel]; keras/jax: [*kernel, in, out]")] = "torch",
    *,
    request: Request,
) -> FanInfo:
    """Fans as the layout's framework computes them (< 2 dims: 422 except in layout keras)."""
    reject_unknown(request.query_params, allowed=("shape", "layout"))
    query_dict(request.query_params)
    dims = parse_dims(shape)
    result = compute_fans(tuple(dims), layout)
    return FanInfo(
        shape=dims, layout=layout, fan_in=result.fan_in, fan_out=result.fan_out, receptive_field=result.receptive_field
    )
