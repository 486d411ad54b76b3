"""What the client knows about the service: names, kinds and choices, as Literal types and tables.

Everything here mirrors the service's OpenAPI document (``openapi/openapi.json``); a contract test
(``tests/test_contract.py``) compares each table with it so that client and server cannot drift.
The Literal types give IDE completion and mypy checking; the tables drive the validation in
:mod:`initserve_client.specs` (done before anything is sent). Only kinds and choices live here: the
server stays the judge of ranges (``std >= 0``, ``low < high``, sizes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeGuard, get_args

MethodName = Literal[
    "zeros", "ones", "constant",
    "uniform", "random_uniform",
    "normal", "random_normal",
    "trunc_normal", "truncated_normal",
    "xavier_uniform", "glorot_uniform",
    "xavier_normal", "glorot_normal",
    "kaiming_uniform", "he_uniform",
    "kaiming_normal", "he_normal",
    "lecun_uniform", "lecun_normal",
    "variance_scaling", "orthogonal", "sparse",
    "eye", "identity",
    "dirac", "delta_orthogonal",
]  # fmt: skip
"""Every method name the service accepts, aliases included."""

DType = Literal["float32", "float64", "float16", "bfloat16", "int64"]
"""Tensor dtypes (``int64`` only for integer-valued methods such as zeros)."""
ModelDType = Literal["float32", "float64", "float16", "bfloat16"]
"""Model dtypes (every tensor; torch's ``num_batches_tracked`` stays int64)."""
Layout = Literal["torch", "keras", "jax"]
"""Axis conventions: torch ``[out, in, *kernel]``, keras/jax ``[*kernel, in, out]``."""
Framework = Literal["torch", "keras", "flax"]
"""Naming, layouts and default initializers of ``/v1/model``."""
Preset = Literal["framework", "xavier", "he", "lecun", "orthogonal", "small_normal", "gpt2"]
"""Scheme presets of ``/v1/model`` (or pass ``{"weight": init, "bias": init}``)."""
TensorFormat = Literal["npy", "safetensors", "json", "raw"]
"""Answers of ``/v1/tensor``."""
ModelFormat = Literal["safetensors", "npz", "json", "manifest"]
"""Answers of ``/v1/model``."""
Nonlinearity = Literal[
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "sigmoid", "tanh", "relu", "selu", "leaky_relu", "gelu", "silu", "elu", "softplus", "mish", "swish",
]  # fmt: skip
"""Activations with a gain (``/v1/gain``, the ``nonlinearity`` parameter of xavier/kaiming)."""
FanMode = Literal["fan_in", "fan_out"]
ScalingMode = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
Distribution = Literal["truncated_normal", "normal", "uniform"]
Bounds = Literal["absolute", "std"]
Kind = Literal["float", "int", "bool", "str"]

DTYPES: tuple[DType, ...] = get_args(DType)
MODEL_DTYPES: tuple[ModelDType, ...] = get_args(ModelDType)
LAYOUTS: tuple[Layout, ...] = get_args(Layout)
FRAMEWORKS: tuple[Framework, ...] = get_args(Framework)
PRESETS: tuple[Preset, ...] = get_args(Preset)
TENSOR_FORMATS: tuple[TensorFormat, ...] = get_args(TensorFormat)
MODEL_FORMATS: tuple[ModelFormat, ...] = get_args(ModelFormat)
NONLINEARITIES: tuple[Nonlinearity, ...] = get_args(Nonlinearity)

SPEC_FIELDS = ("method", "shape", "dtype", "layout", "seed", "name", "zero_rows")
"""Fields every tensor spec has, whatever its method."""
WINDOW_FIELDS = ("slice", "shard")
"""Optional fields of a ``POST /v1/tensor`` body choosing a part (a window) of the tensor, not part of its spec:
``slice`` is ``[[start, stop], …]`` per leading dimension, ``shard`` is ``{"dim", "index", "count"}``
(``torch.tensor_split`` semantics, within the slice). ``/v1/model`` takes them per tensor name as ``slices``
and ``shards`` (:data:`MODEL_WINDOW_FIELDS`). The client sends them from the ``slice=``/``shard=`` and
``slices=``/``shards=`` keywords (:func:`initserve_client.specs.tensor_window`, ``model_windows``)."""
SHARD_FIELDS = ("dim", "index", "count")
"""The keys of a ``shard``, all required integers."""
MAX_SEED = (1 << 64) - 1


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of a method: its JSON kind, whether it must be given, its choices, and whether
    ``null`` is a valid value (an optional parameter without default)."""

    kind: Kind
    required: bool = False
    choices: tuple[str, ...] | None = None
    nullable: bool = False


@dataclass(frozen=True)
class MethodInfo:
    """One initialization method: its canonical name, aliases and parameters."""

    name: str
    aliases: tuple[str, ...]
    params: dict[str, ParamInfo]


_FLOAT = ParamInfo("float")
_BOOL = ParamInfo("bool")
_OPTIONAL_FLOAT = ParamInfo("float", nullable=True)
_NONLINEARITY = ParamInfo("str", choices=NONLINEARITIES)
_GAIN_FROM = {"nonlinearity": ParamInfo("str", choices=NONLINEARITIES, nullable=True), "negative_slope": _OPTIONAL_FLOAT}
_KAIMING = {"negative_slope": _FLOAT, "mode": ParamInfo("str", choices=get_args(FanMode)), "nonlinearity": _NONLINEARITY,
            "gain": _OPTIONAL_FLOAT}

METHODS: dict[str, MethodInfo] = {
    method.name: method
    for method in (
        MethodInfo("zeros", (), {}),
        MethodInfo("ones", (), {}),
        MethodInfo("constant", (), {"value": ParamInfo("float", required=True)}),
        MethodInfo("uniform", ("random_uniform",), {"low": _FLOAT, "high": _FLOAT}),
        MethodInfo("normal", ("random_normal",), {"mean": _FLOAT, "std": _FLOAT}),
        MethodInfo("trunc_normal", ("truncated_normal",), {"mean": _FLOAT, "std": _FLOAT, "low": _FLOAT, "high": _FLOAT,
                                                           "bounds": ParamInfo("str", choices=get_args(Bounds))}),
        MethodInfo("xavier_uniform", ("glorot_uniform",), {"gain": _FLOAT, **_GAIN_FROM}),
        MethodInfo("xavier_normal", ("glorot_normal",), {"gain": _FLOAT, **_GAIN_FROM, "truncated": _BOOL}),
        MethodInfo("kaiming_uniform", ("he_uniform",), dict(_KAIMING)),
        MethodInfo("kaiming_normal", ("he_normal",), {**_KAIMING, "truncated": _BOOL}),
        MethodInfo("lecun_uniform", (), {}),
        MethodInfo("lecun_normal", (), {"truncated": _BOOL}),
        MethodInfo("variance_scaling", (), {"scale": _FLOAT, "mode": ParamInfo("str", choices=get_args(ScalingMode)),
                                            "distribution": ParamInfo("str", choices=get_args(Distribution))}),
        MethodInfo("orthogonal", (), {"gain": _FLOAT}),
        MethodInfo("sparse", (), {"sparsity": ParamInfo("float", required=True), "std": _FLOAT}),
        MethodInfo("eye", ("identity",), {"gain": _FLOAT}),
        MethodInfo("dirac", (), {"groups": ParamInfo("int")}),
        MethodInfo("delta_orthogonal", (), {"gain": _FLOAT}),
    )
}
"""Every method by canonical name, in the service's catalogue order."""

CANONICAL: dict[str, str] = {name: method.name for method in METHODS.values() for name in (method.name,
                                                                                           *method.aliases)}
"""Any accepted method name (alias or canonical) → its canonical name."""


@dataclass(frozen=True)
class Endpoint:
    """One route the client calls, and the query parameters it may send to it."""

    verb: Literal["GET", "POST"]
    path: str
    query: tuple[str, ...] = ()


TENSOR = Endpoint("POST", "/v1/tensor", ("format",))
MODEL = Endpoint("POST", "/v1/model", ("format", "tensors"))
STATS = Endpoint("POST", "/v1/stats", ("bins", "sample"))
PROPAGATION = Endpoint("POST", "/v1/stats/propagation")
METHODS_ENDPOINT = Endpoint("GET", "/v1/methods")
GAIN = Endpoint("GET", "/v1/gain", ("nonlinearity", "negative_slope"))
FANS = Endpoint("GET", "/v1/fans", ("shape", "layout"))
ENDPOINTS: tuple[Endpoint, ...] = (TENSOR, MODEL, STATS, PROPAGATION, METHODS_ENDPOINT, GAIN, FANS)

MODEL_FIELDS = ("layers", "framework", "scheme", "seed", "dtype", "n_layer", "slices", "shards")
"""The body fields of ``POST /v1/model`` (and of a model sent to ``POST /v1/stats``, which refuses the windows)."""
MODEL_WINDOW_FIELDS = ("slices", "shards")
"""The fields of ``POST /v1/model`` choosing windows: tensor name → a ``slice``, tensor name → a ``shard``."""
PROPAGATION_FIELDS = ("layers", "framework", "scheme", "seed", "n_layer", "batch_size", "input", "input_shape")
"""The body fields of ``POST /v1/stats/propagation``."""
SCHEME_ROLES = ("weight", "bias")
"""The keys of an explicit scheme ``{"weight": init, "bias": init}``."""


def is_method(name: object) -> TypeGuard[MethodName]:
    """Whether ``name`` is a method name the service accepts (narrows a ``str`` to :data:`MethodName`)."""
    return isinstance(name, str) and name in CANONICAL


def is_dtype(name: object) -> TypeGuard[DType]:
    """Whether ``name`` is a tensor dtype (narrows a ``str`` to :data:`DType`)."""
    return isinstance(name, str) and name in DTYPES


def is_layout(name: object) -> TypeGuard[Layout]:
    """Whether ``name`` is a layout (narrows a ``str`` to :data:`Layout`)."""
    return isinstance(name, str) and name in LAYOUTS


def is_framework(name: object) -> TypeGuard[Framework]:
    """Whether ``name`` is a framework (narrows a ``str`` to :data:`Framework`)."""
    return isinstance(name, str) and name in FRAMEWORKS


def is_preset(name: object) -> TypeGuard[Preset]:
    """Whether ``name`` is a scheme preset (narrows a ``str`` to :data:`Preset`)."""
    return isinstance(name, str) and name in PRESETS
