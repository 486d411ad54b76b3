"""Wire models of ``POST /v1/model``, generated from the core's layer catalogue.

``layers`` is a discriminated union on ``type``: one model per entry of
:data:`initserve.core.model.LAYER_TYPES` (its declared fields, plus the
common ``name``, ``init``, ``nonlinearity``, ``negative_slope`` and
``residual_projection``) and the raw ``tensor`` entry. Initializations are
:data:`~initserve.api.schemas.InitSpec` (method and parameters, no shape). As
for tensors, these models check types; the core checks meaning (sizes,
divisibility, names) and raises errors with the same field paths.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model

from initserve.api.schemas import (
    SEED_SCHEMA,
    FiniteFloat,
    InitSpec,
    Pair,
    ShardSpec,
    WholeTensorSpec,
    camel,
    param_field,
)
from initserve.core import NONLINEARITIES
from initserve.core.model import LAYER_TYPES, FrameworkName, LayerType, PresetName

FloatDType = Literal["float32", "float64", "float16", "bfloat16"]
Nonlinearity = Literal[NONLINEARITIES]  # type: ignore[valid-type]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LayerBase(Strict):
    """Fields every layer has."""

    name: str | None = Field(
        default=None,
        description="layer name (default: the index in torch, as nn.Sequential; 'dense', 'dense_1' … in keras; "
        "'Dense_0' … in flax)",
        min_length=1,
    )
    init: dict[str, InitSpec] | None = Field(
        default=None,
        description="initialization per parameter: its own name (weight_hh_l0, out_proj.weight, kernel) or its "
        "role (weight, bias); beats the scheme",
    )
    nonlinearity: Nonlinearity | None = Field(
        default=None, description="the activation after this layer: supplies the gain of scheme and init specs"
    )
    negative_slope: FiniteFloat | None = Field(default=None, description="leaky_relu slope of that activation")
    residual_projection: bool = Field(
        default=False, description="scheme gpt2: a projection into the residual stream, std 0.02/√(2·n_layer)"
    )


def layer_model(kind: LayerType) -> type[LayerBase]:
    """The wire model of one layer type."""
    names: Any = Literal[(kind.name, *kind.aliases)]
    fields: dict[str, Any] = {
        "type": (names, Field(description=f"torch {kind.doc}")),
        **{param.name: param_field(param) for param in kind.fields},
    }
    return create_model(camel(kind.name) + "Layer", __base__=LayerBase, __doc__=kind.doc, **fields)


class TensorLayer(Strict):
    """Any other tensor: its full name, shape and initialization."""

    type: Literal["tensor"]
    name: str = Field(min_length=1, description="the full tensor name")
    shape: list[int] = Field(description="dimensions in the framework's layout")
    init: InitSpec
    nonlinearity: Nonlinearity | None = None
    negative_slope: FiniteFloat | None = None


LAYER_MODELS: tuple[type[BaseModel], ...] = (*(layer_model(kind) for kind in LAYER_TYPES), TensorLayer)
Layer = Annotated[Union[LAYER_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007


class SchemeRules(Strict):
    """An explicit scheme: the initialization of every weight and/or bias (others keep the framework's)."""

    weight: InitSpec | None = None
    bias: InitSpec | None = None


def core_arguments(request: BaseModel) -> dict[str, Any]:
    """What the caller set (the core fills defaults), with unset roles of an explicit scheme dropped."""
    data = request.model_dump(exclude_unset=True)
    if isinstance(data.get("scheme"), dict):
        data["scheme"] = {role: spec for role, spec in data["scheme"].items() if spec is not None}
    return data


def _scheme_tag(value: Any) -> str:
    return "preset" if isinstance(value, str) else "rules"


Scheme = Annotated[
    Union[Annotated[PresetName, Tag("preset")], Annotated[SchemeRules, Tag("rules")]],  # noqa: UP007
    Discriminator(_scheme_tag),
]
"""A preset name or explicit rules (tagged, so errors read ``scheme`` or ``scheme.weight.std``)."""


class ModelSpec(Strict):
    """A model: layers in order, the framework whose names and defaults to follow, and a scheme (``/v1/stats``)."""

    layers: list[Layer] = Field(min_length=1, description="the layers, in order")
    framework: FrameworkName = Field(default="torch", description="tensor names, kernel layouts and default inits")
    scheme: Scheme = Field(
        default="framework",
        description="framework (what the framework's constructors do), xavier, he, lecun, orthogonal, "
        'small_normal, gpt2, or {"weight": init, "bias": init}',
    )
    seed: int = Field(default=0, description="0 … 2^64−1; each tensor's stream is keyed by (seed, full name)",
                      json_schema_extra=SEED_SCHEMA)
    dtype: FloatDType = Field(default="float32", description="dtype of every tensor (torch's num_batches_tracked "
                              "stays int64)")
    n_layer: int | None = Field(default=None, ge=1, description="scheme gpt2: number of transformer blocks "
                                "(default: half the layers marked residual_projection)")

    def core_arguments(self) -> dict[str, Any]:
        """Keyword arguments of :func:`initserve.core.model.resolve_model`."""
        return core_arguments(self)


class ModelRequest(ModelSpec):
    """A model (``/v1/model``), and the parts of its tensors to answer."""

    slices: dict[str, list[Pair]] | None = Field(
        default=None, description="per tensor name, answer only this box: [start, stop) per leading dimension "
        "of the tensor's shape (as /v1/tensor's slice)")
    shards: dict[str, ShardSpec] | None = Field(
        default=None, description="per tensor name, answer only part index of torch.tensor_split(tensor, count, "
        "dim) (within its slice if both are given)")

    def core_arguments(self) -> dict[str, Any]:
        """Keyword arguments of :func:`initserve.core.model.resolve_model` (the windows are not among them)."""
        data = super().core_arguments()
        data.pop("slices", None)
        data.pop("shards", None)
        return data


def _stats_tag(value: Any) -> str:
    return "model-spec" if isinstance(value, dict) and "layers" in value else "tensor-spec"


StatsRequest = Annotated[
    Union[Annotated[WholeTensorSpec, Tag("tensor-spec")], Annotated[ModelSpec, Tag("model-spec")]],  # noqa: UP007
    Discriminator(_stats_tag),
]
"""``POST /v1/stats``: a tensor spec (as /v1/tensor) or a model (as /v1/model, recognised by ``layers``)."""

PROPAGATION_LAYER_MODELS = tuple(model for model in LAYER_MODELS if model.__name__ in ("LinearLayer", "Conv2dLayer"))
PropagationLayer = Annotated[Union[PROPAGATION_LAYER_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007


class PropagationRequest(Strict):
    """A stack of linear/conv2d layers (their ``nonlinearity`` is the activation applied), a scheme and a batch."""

    layers: list[PropagationLayer] = Field(min_length=1, description="linear (dense) and conv2d layers, in order")
    framework: FrameworkName = Field(default="torch", description="as /v1/model: decides the default initializers")
    scheme: Scheme = Field(default="framework", description="as /v1/model")
    seed: int = Field(default=0, description="keys the weights, the input batch and the output gradient",
                      json_schema_extra=SEED_SCHEMA)
    n_layer: int | None = Field(default=None, ge=1, description="scheme gpt2 only, as /v1/model")
    batch_size: int = Field(default=256, ge=2, description="examples pushed through")
    input: InitSpec | None = Field(default=None, description="law of the input batch (default N(0, 1))")
    input_shape: list[int] | None = Field(
        default=None, description="one example's shape: [features] (default: the first layer's in_features) or "
        "[channels, height, width] (required for a first conv2d)")

    def core_arguments(self) -> dict[str, Any]:
        """Keyword arguments of :func:`initserve.core.stats.propagation.propagate`."""
        return core_arguments(self)
