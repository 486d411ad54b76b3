"""A whole model from a list of layers: every tensor named, shaped and resolved to a :class:`Tensor`.

:func:`resolve_model` validates the request (raising :class:`SpecError` with
the field path, e.g. ``layers.2.num_heads``, before anything is generated) and
returns a :class:`Model`: its tensors in framework order, each the
:class:`Tensor` that ``/v1/tensor`` would give for the same resolved spec.

Each tensor's initialization, first match wins:

1. the layer's ``init`` entry for the parameter's own name (``weight_hh_l0``,
   ``out_proj.weight``, ``kernel``);
2. the layer's ``init`` entry for its role, ``weight`` or ``bias``;
3. the model's ``scheme`` (see :mod:`initserve.core.model.schemes`);
4. the framework's default.

In 1–3 the layer's ``nonlinearity`` supplies the gain. The stream of each
tensor is keyed by (seed, full tensor name), so adding, removing or reordering
other layers changes none of its bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from initserve.core.dtypes import INTEGER_DTYPES
from initserve.core.errors import SpecError
from initserve.core.gains import NONLINEARITIES
from initserve.core.layout import compute_fans
from initserve.core.methods import effective_gain
from initserve.core.model.frameworks import FRAMEWORKS, Framework
from initserve.core.model.layers import layer_config, layer_type
from initserve.core.model.parameter import Init, Parameter, Role
from initserve.core.model.schemes import PRESETS, explicit_init, gpt2_residual_std, preset_init, with_nonlinearity
from initserve.core.params import Param
from initserve.core.tensor import Tensor, check_dtype, check_seed, check_shape, resolve

MAX_LAYERS = 100_000
ROLES = ("weight", "bias")
_COMMON = frozenset({"type", "name", "init", "nonlinearity", "negative_slope", "residual_projection"})
_SLOPE = Param("negative_slope", "float", None, "leaky_relu slope of the activation", minimum=0.0)


@dataclass(frozen=True)
class ModelTensor:
    """One tensor of a model: the resolved :class:`Tensor` shown under the framework's shape.

    ``shape`` differs from ``tensor.shape`` only for Flax ``DenseGeneral`` kernels (a reshape of the
    same row-major bytes). ``source`` says where the initialization came from.
    """

    tensor: Tensor
    shape: tuple[int, ...]
    layer: str
    layer_index: int
    role: Role
    source: str  # "layer init", "scheme", "framework default"

    @property
    def name(self) -> str:
        return self.tensor.name

    @property
    def dtype(self) -> str:
        return self.tensor.dtype

    @property
    def numel(self) -> int:
        return self.tensor.numel

    @property
    def metadata(self) -> dict[str, str]:
        return {}

    def iter_flat(self, start: int, stop: int) -> Iterator[np.ndarray]:
        return self.tensor.iter_flat(start, stop)

    def describe(self) -> dict[str, Any]:
        """The resolved initialization: method, every parameter, fans and gain."""
        spec = self.tensor.spec
        fan_in: int | None = None
        fan_out: int | None = None
        try:
            fans = compute_fans(spec.shape, spec.layout)
            fan_in, fan_out = fans.fan_in, fans.fan_out
        except SpecError:
            pass  # fewer than 2 dimensions: no fans
        gain = effective_gain(spec.method, spec.params)
        return {"spec": spec.canonical(), "fan_in": fan_in, "fan_out": fan_out, "gain": gain, "source": self.source}


@dataclass(frozen=True)
class Model:
    """The resolved tensors of a model, in the framework's order."""

    framework: str
    tensors: tuple[ModelTensor, ...]

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors)

    def select(self, names: Sequence[str]) -> Model:
        """The tensors named in ``names`` (model order kept); unknown names are a :class:`SpecError`."""
        known = {t.name for t in self.tensors}
        for name in names:
            if name not in known:
                sample = ", ".join(sorted(known)[:20])
                raise SpecError("tensors", name, f"no tensor of that name in the model; names include: {sample}")
        wanted = set(names)
        return Model(self.framework, tuple(t for t in self.tensors if t.name in wanted))


def _prefixed(error: SpecError, prefix: str) -> SpecError:
    return SpecError(f"{prefix}.{error.field}" if error.field else prefix, error.value, error.message)


def _init(spec: Any, field: str) -> Init:
    """A user's ``{"method": …, **params}`` as an :class:`Init` (parameters are checked when resolved)."""
    if not isinstance(spec, Mapping) or "method" not in spec:
        raise SpecError(field, spec, 'must be an object with a "method" and its parameters')
    return Init(spec["method"], {k: v for k, v in spec.items() if k != "method"})


def _scheme(scheme: Any) -> str | dict[str, Init]:
    if isinstance(scheme, str):
        if scheme not in PRESETS:
            raise SpecError("scheme", scheme, f"unknown scheme; presets: {', '.join(PRESETS)}, or "
                            '{"weight": spec, "bias": spec}')
        return scheme
    if not isinstance(scheme, Mapping) or not scheme or set(scheme) - set(ROLES):
        raise SpecError("scheme", scheme, 'must be a preset name or {"weight": spec, "bias": spec}')
    return {role: _init(spec, f"scheme.{role}") for role, spec in scheme.items()}


@dataclass(frozen=True)
class _Layer:
    """One validated entry of ``layers``: its type, name, parameters and initialization hints."""

    index: int
    kind: str
    name: str | None
    parameters: list[Parameter]
    init: dict[str, Init]
    nonlinearity: str | None
    negative_slope: float | None
    residual: bool


def _tensor_entry(entry: Mapping[str, Any], where: str) -> Parameter:
    """A raw ``tensor`` entry: one tensor, its full name, shape and required ``init`` spec."""
    unknown = set(entry) - {"type", "name", "shape", "init", "nonlinearity", "negative_slope"}
    if unknown:
        field = min(unknown)
        raise SpecError(f"{where}.{field}", entry[field], "unknown field for a 'tensor' entry; accepted: name, "
                        "shape, init, nonlinearity, negative_slope")
    for field in ("name", "shape", "init"):
        if field not in entry:
            raise SpecError(f"{where}.{field}", None, "is required for a 'tensor' entry")
    if not isinstance(entry["name"], str) or not entry["name"]:
        raise SpecError(f"{where}.name", entry["name"], "must be a non-empty string (the full tensor name)")
    init = _init(entry["init"], f"{where}.init")
    try:
        shape = check_shape(entry["shape"])
    except SpecError as error:
        raise _prefixed(error, where) from None
    return Parameter("", shape, "weight", init, schemed=False)


def _layer(index: int, entry: Any, framework: Framework) -> _Layer:
    where = f"layers.{index}"
    if not isinstance(entry, Mapping):
        raise SpecError(where, entry, "must be an object with a 'type'")
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise SpecError(f"{where}.name", name, "must be a non-empty string")
    nonlinearity = entry.get("nonlinearity")
    if nonlinearity is not None and nonlinearity not in NONLINEARITIES:
        raise SpecError(f"{where}.nonlinearity", nonlinearity,
                        f"unknown nonlinearity; known: {', '.join(NONLINEARITIES)}")
    try:
        slope = _SLOPE.check(entry.get("negative_slope"))
    except SpecError as error:
        raise _prefixed(error, where) from None
    if entry.get("type") == "tensor":
        return _Layer(index, "tensor", name, [_tensor_entry(entry, where)], {}, nonlinearity, slope, False)
    if "type" not in entry:
        raise SpecError(f"{where}.type", None, "is required")
    try:
        kind = layer_type(entry["type"]).name
        config = layer_config(layer_type(kind), {k: v for k, v in entry.items() if k not in _COMMON})
        parameters = framework.parameters[kind](config)
    except SpecError as error:
        raise _prefixed(error, where) from None
    init = entry.get("init", {})
    if not isinstance(init, Mapping):
        raise SpecError(f"{where}.init", init, 'must map parameter names (or "weight", "bias") to specs')
    paths = [p.path for p in parameters]
    accepted = paths + [role for role in ROLES if role not in paths and any(p.role == role for p in parameters)]
    for key in init:
        if key not in accepted:
            raise SpecError(f"{where}.init.{key}", init[key], f"no such parameter in this layer; accepted: "
                            f"{', '.join(accepted) or 'none'}")
    inits = {key: _init(spec, f"{where}.init.{key}") for key, spec in init.items()}
    residual = entry.get("residual_projection", False)
    if not isinstance(residual, bool):
        raise SpecError(f"{where}.residual_projection", residual, "must be true or false")
    return _Layer(index, kind, name, parameters, inits, nonlinearity, slope, residual)


def _choose(layer: _Layer, parameter: Parameter, scheme: str | dict[str, Init],
            residual_std: float | None) -> tuple[Init, str, str]:
    """The initialization of ``parameter``, where it came from, and the request field it came from."""
    where = f"layers.{layer.index}"
    if layer.kind == "tensor":
        return with_nonlinearity(parameter.default, layer.nonlinearity, layer.negative_slope), "layer init", \
            f"{where}.init"
    for key in (parameter.path, parameter.role):
        if key in layer.init:
            init = with_nonlinearity(layer.init[key], layer.nonlinearity, layer.negative_slope)
            return init, "layer init", f"{where}.init.{key}"
    chosen = (explicit_init(scheme, parameter) if isinstance(scheme, dict)
              else preset_init(scheme, parameter, residual_std if layer.residual else None))
    if chosen is not None:
        init = with_nonlinearity(chosen, layer.nonlinearity, layer.negative_slope)
        return init, "scheme", f"scheme.{parameter.role}" if isinstance(scheme, dict) else where
    return parameter.default, "framework default", where


def resolve_model(layers: Any, *, framework: str = "torch", scheme: Any = "framework", seed: int = 0,
                  dtype: str = "float32", n_layer: int | None = None) -> Model:
    """Validate a model request and resolve every tensor (nothing is generated yet)."""
    if framework not in FRAMEWORKS:
        raise SpecError("framework", framework, f"must be one of: {', '.join(FRAMEWORKS)}")
    conventions = FRAMEWORKS[framework]
    check_seed(seed)
    check_dtype(dtype)
    if dtype in INTEGER_DTYPES:
        raise SpecError("dtype", dtype, "a model's dtype must be a floating-point dtype")
    if not isinstance(layers, list | tuple) or not layers or len(layers) > MAX_LAYERS:
        raise SpecError("layers", layers if not isinstance(layers, list | tuple) else len(layers),
                        f"must be a non-empty list of at most {MAX_LAYERS} layers")
    rules = _scheme(scheme)
    if n_layer is not None and rules != "gpt2":
        raise SpecError("n_layer", n_layer, "is only used by scheme 'gpt2'")
    parsed = [_layer(index, entry, conventions) for index, entry in enumerate(layers)]
    residuals = sum(layer.residual for layer in parsed)
    if n_layer is not None and (isinstance(n_layer, bool) or not isinstance(n_layer, int) or n_layer < 1):
        raise SpecError("n_layer", n_layer, "must be a positive integer")
    projections = 2 * n_layer if n_layer else residuals
    residual_std = gpt2_residual_std(projections) if projections else None
    seen: dict[str, int] = {}
    owners: dict[str, int] = {}
    tensors = []
    for layer in parsed:
        layer_name = layer.name
        if layer_name is None:  # Keras and Flax count only the layers they name themselves
            base = conventions.base_name(layer.kind)
            layer_name = conventions.default_layer_name(layer.kind, layer.index, seen.get(base, 0))
            seen[base] = seen.get(base, 0) + 1
        for parameter in layer.parameters:
            full = layer_name if layer.kind == "tensor" else conventions.tensor_name(layer_name, parameter)
            if full in owners:
                raise SpecError(f"layers.{layer.index}.name", layer_name,
                                f"tensor name {full!r} is already used by layers.{owners[full]}")
            owners[full] = layer.index
            init, source, field = _choose(layer, parameter, rules, residual_std)
            shape = parameter.matrix or parameter.shape
            try:
                tensor = resolve(init.method, shape, dtype=parameter.dtype or dtype, layout=conventions.layout,
                                 seed=seed, name=full, zero_rows=[*init.zero_rows, *parameter.zero_rows] or None,
                                 **init.params)
            except SpecError as error:
                raise _prefixed(error, field) from None
            tensors.append(ModelTensor(tensor, parameter.shape, layer_name, layer.index, parameter.role, source))
    return Model(framework, tuple(tensors))

