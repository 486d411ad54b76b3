"""Request specifications, validated before anything is sent.

:class:`TensorSpec` is one tensor (what ``POST /v1/tensor`` takes); :func:`model_body` and
:func:`propagation_body` build the bodies of ``/v1/model`` and ``/v1/stats/propagation``. Checks use the
tables of :mod:`initserve_client.catalog`: an unknown method or parameter, a wrong kind (a string for a
float, a bool for an int, NaN), a bad shape, dtype, layout or seed raises :class:`InvalidSpec` naming
the field (dotted path, as the service names it). Ranges (``std >= 0``, ``low < high``, sizes, what a
layer needs) are left to the service, the final judge, which answers :class:`InvalidRequest`.

Windows (``slice`` and ``shard`` of a tensor, ``slices`` and ``shards`` per tensor of a model) are not
part of a spec: :func:`tensor_window` and :func:`model_windows` check them on their own (integers,
``start <= stop``, ``count >= 1``, ``0 <= index < count``); whether they fit the tensor's shape, and
whether a model has the named tensors, is the service's to judge.

Values are normalised on the way: numpy scalars become Python numbers, tuples become lists, ``None``
for an optional parameter means "the service's default" and is not sent.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np

from initserve_client.catalog import (
    CANONICAL,
    DTYPES,
    FRAMEWORKS,
    LAYOUTS,
    MAX_SEED,
    METHODS,
    MODEL_DTYPES,
    PRESETS,
    SCHEME_ROLES,
    SHARD_FIELDS,
    Bounds,
    Distribution,
    DType,
    Framework,
    Kind,
    Layout,
    MethodName,
    ModelDType,
    Nonlinearity,
    ParamInfo,
    Preset,
    ScalingMode,
)
from initserve_client.errors import InvalidSpec

MAX_NAME_LENGTH = 1024

Scheme = Preset | Mapping[str, Any]
"""A preset name, or explicit rules ``{"weight": init, "bias": init}`` (an init: ``{"method": ..., **params}``)."""

class ShardDict(TypedDict):
    """Part ``index`` of ``torch.tensor_split(tensor, count, dim)`` (``dim`` < 0 counts from the end)."""

    dim: int
    index: int
    count: int


Slice = Sequence[Sequence[int]]
"""A box of a tensor: ``[start, stop)`` per leading dimension, ``[(0, 128), (64, 96)]`` (missing trailing
dimensions: whole)."""
Shard = ShardDict | Mapping[str, int] | tuple[int, int, int]
"""Part ``index`` of ``torch.tensor_split(tensor, count, dim)``: ``{"dim": 0, "index": rank, "count": world}``
or the tuple ``(dim, index, count)``. The ``count`` parts concatenate (along ``dim``) to the whole tensor."""


class TensorParams(TypedDict, total=False):
    """Keyword arguments of a tensor request: the common fields, then every method's parameters (each method
    takes only its own: ``/v1/methods`` lists them). ``None`` means the service's default."""

    dtype: DType
    layout: Layout
    seed: int
    name: str
    zero_rows: Sequence[Sequence[int]] | None
    value: float
    low: float
    high: float
    mean: float
    std: float
    bounds: Bounds
    gain: float | None
    nonlinearity: Nonlinearity | None
    negative_slope: float | None
    truncated: bool
    mode: ScalingMode
    scale: float
    distribution: Distribution
    sparsity: float
    groups: int


# --- scalar checks -----------------------------------------------------------------------------------------


def check_int(value: Any, field: str, minimum: int | None = None) -> int:
    """An integer (numpy integers too; never a bool or a float)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise InvalidSpec(field, value, "must be an integer")
    number = int(value)
    if minimum is not None and number < minimum:
        raise InvalidSpec(field, value, f"must be >= {minimum}")
    return number


def check_float(value: Any, field: str) -> float:
    """A finite number (ints too; never a bool, a string, NaN or ±inf)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise InvalidSpec(field, value, "must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidSpec(field, value, "must be a finite number (NaN and ±inf are refused)")
    return number


def check_bool(value: Any, field: str) -> bool:
    """True or False (numpy bools too)."""
    if not isinstance(value, bool | np.bool_):
        raise InvalidSpec(field, value, "must be true or false")
    return bool(value)


def check_choice(value: Any, choices: Sequence[str], field: str) -> str:
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidSpec(field, value, f"must be one of: {', '.join(choices)}")
    return value


def check_shape(value: Any, field: str = "shape") -> list[int]:
    """A sequence of integers >= 0 (``[]`` is a 0-D tensor; a numpy shape or array works too)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidSpec(field, value, "must be a list of integers >= 0")
    return [check_int(dim, f"{field}.{index}", minimum=0) for index, dim in enumerate(value)]


def check_seed(value: Any, field: str = "seed") -> int:
    """0 … 2**64 − 1."""
    seed = check_int(value, field, minimum=0)
    if seed > MAX_SEED:
        raise InvalidSpec(field, value, "must be at most 2**64 - 1")
    return seed


_CHECKS = {"float": check_float, "int": check_int, "bool": check_bool}


def check_param(info: ParamInfo, value: Any, field: str) -> Any:
    """One method parameter, per its kind and choices."""
    if info.choices is not None:
        return check_choice(value, info.choices, field)
    kind: Kind = info.kind
    if kind == "str":
        if not isinstance(value, str):
            raise InvalidSpec(field, value, "must be a string")
        return value
    return _CHECKS[kind](value, field)


def check_method(value: Any, field: str = "method") -> MethodName:
    """A method name the service accepts (aliases too)."""
    if not isinstance(value, str) or value not in CANONICAL:
        raise InvalidSpec(field, value, f"unknown method; known: {', '.join(sorted(CANONICAL))}")
    return value  # type: ignore[return-value]  # checked against the table the Literal mirrors


def check_params(method: str, params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``method``'s parameters: known, of the right kind, required ones present; ``None`` values dropped."""
    declared = METHODS[CANONICAL[method]].params
    checked: dict[str, Any] = {}
    for name, value in params.items():
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise InvalidSpec(prefix + name, value, f"unknown parameter for method {method!r} (its parameters: {known})")
        if value is not None:
            checked[name] = check_param(declared[name], value, prefix + name)
    for name, info in declared.items():
        if info.required and name not in checked:
            raise InvalidSpec(prefix + name, None, f"is required by method {method!r}")
    return checked


def check_init(value: Any, field: str) -> dict[str, Any]:
    """An initialization without shape, ``{"method": "normal", "std": 0.02}`` (schemes, layer ``init``, input)."""
    if not isinstance(value, Mapping):
        raise InvalidSpec(field, value, 'must be an object such as {"method": "normal", "std": 0.02}')
    params = dict(value)
    method = check_method(params.pop("method", None), f"{field}.method")
    return {"method": method, **check_params(method, params, f"{field}.")}


def check_pairs(value: Any, field: str, ordered: bool = False) -> list[list[int]]:
    """``[[start, stop], …]`` of integers >= 0 (a numpy array too); with ``ordered``, each ``start <= stop``."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidSpec(field, value, "must be a list of [start, stop] pairs")
    pairs = []
    for index, pair in enumerate(value):
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InvalidSpec(f"{field}.{index}", pair, "must be a [start, stop] pair")
        start, stop = (check_int(bound, f"{field}.{index}.{end}", minimum=0) for end, bound in enumerate(pair))
        if ordered and start > stop:
            raise InvalidSpec(f"{field}.{index}", [start, stop], "must be a [start, stop] pair with start <= stop")
        pairs.append([start, stop])
    return pairs


def check_zero_rows(value: Any, field: str = "zero_rows") -> list[list[int]] | None:
    """``[[start, stop], …]`` ranges along the first axis, or None."""
    if value is None:
        return None
    return check_pairs(value, field)


def check_shard(value: Any, field: str = "shard") -> ShardDict:
    """``{"dim", "index", "count"}`` (or a ``(dim, index, count)`` tuple): integers, ``count >= 1``,
    ``0 <= index < count``; ``dim`` may be negative (from the end, as torch). Whether ``dim`` exists is the
    service's to judge."""
    if isinstance(value, Mapping):
        for key in value:
            if key not in SHARD_FIELDS:
                raise InvalidSpec(f"{field}.{key}", value[key], "unknown key; a shard is {dim, index, count}")
        for key in SHARD_FIELDS:
            if key not in value:
                raise InvalidSpec(f"{field}.{key}", None, "is required: a shard is {dim, index, count}")
        dim, index, count = (value[key] for key in SHARD_FIELDS)
    elif isinstance(value, tuple | list) and len(value) == 3:
        dim, index, count = value
    else:
        raise InvalidSpec(field, value, 'must be {"dim": d, "index": i, "count": n} or a (dim, index, count) tuple')
    shard = ShardDict(dim=check_int(dim, f"{field}.dim"), index=check_int(index, f"{field}.index", minimum=0),
                      count=check_int(count, f"{field}.count", minimum=1))
    if shard["index"] >= shard["count"]:
        raise InvalidSpec(f"{field}.index", index, f"must be < count ({shard['count']})")
    return shard


def jsonable(value: Any, field: str) -> Any:
    """``value`` as JSON data (numpy scalars and arrays become numbers and lists, tuples lists); refuses
    NaN/±inf and objects JSON cannot carry, naming the field."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return check_float(value, field)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidSpec(f"{field}.{key}" if field else str(key), key, "keys must be strings")
            out[key] = jsonable(item, f"{field}.{key}" if field else key)
        return out
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return [jsonable(item, f"{field}.{index}") for index, item in enumerate(value)]
    raise InvalidSpec(field, value, f"cannot be sent as JSON ({type(value).__name__})")


# --- one tensor --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One tensor: method (or alias), shape, the method's parameters and the common fields.

    >>> TensorSpec("normal", (4, 4), params={"std": 0.02}, seed=1, name="fc1.weight")

    Validated on construction (:class:`InvalidSpec`); ``shape`` is stored as a tuple, ``params`` as a
    dict without ``None`` values, numbers as Python numbers.
    """

    method: MethodName
    shape: Sequence[int]
    params: Mapping[str, Any] = field(default_factory=dict)
    dtype: DType = "float32"
    layout: Layout = "torch"
    seed: int = 0
    name: str = ""
    zero_rows: Sequence[Sequence[int]] | None = None

    def __post_init__(self) -> None:
        check_method(self.method)
        rows = check_zero_rows(self.zero_rows)
        if not isinstance(self.params, Mapping):
            raise InvalidSpec("params", self.params, "must be a mapping of parameter names to values")
        normalised = {
            "shape": tuple(check_shape(self.shape)),
            "params": check_params(self.method, self.params),
            "dtype": check_choice(self.dtype, DTYPES, "dtype"),
            "layout": check_choice(self.layout, LAYOUTS, "layout"),
            "seed": check_seed(self.seed),
            "zero_rows": None if rows is None else tuple(tuple(pair) for pair in rows),
        }
        if not isinstance(self.name, str) or len(self.name) > MAX_NAME_LENGTH:
            raise InvalidSpec("name", self.name, f"must be a string of at most {MAX_NAME_LENGTH} characters")
        for key, value in normalised.items():
            object.__setattr__(self, key, value)

    def __hash__(self) -> int:  # params is a dict: hash the canonical JSON instead
        return hash(json.dumps(self.to_json(), sort_keys=True))

    @classmethod
    def of(cls, method: MethodName, shape: Sequence[int], **kwargs: Any) -> TensorSpec:
        """A spec from keyword arguments: the common fields (dtype, layout, seed, name, zero_rows) and the
        method's parameters mixed, as ``client.tensor(method, shape, **kwargs)`` takes them."""
        common = {key: kwargs.pop(key) for key in ("dtype", "layout", "seed", "name", "zero_rows") if key in kwargs}
        for key in ("dtype", "layout", "seed", "name"):
            if key in common and common[key] is None:
                del common[key]  # None: the default
        return cls(method, shape, kwargs, **common)

    @property
    def canonical_method(self) -> str:
        """The canonical name of :attr:`method` (``he_normal`` → ``kaiming_normal``)."""
        return CANONICAL[self.method]

    def to_json(self) -> dict[str, Any]:
        """The body of ``POST /v1/tensor``."""
        body: dict[str, Any] = {"method": self.method, "shape": list(self.shape), "dtype": self.dtype,
                                "layout": self.layout, "seed": self.seed, "name": self.name, **self.params}
        if self.zero_rows is not None:
            body["zero_rows"] = [list(pair) for pair in self.zero_rows]
        return body


Box = tuple[tuple[int, int], ...]
"""``[start, stop)`` per dimension of a tensor."""


def split_bounds(n: int, index: int, count: int) -> tuple[int, int]:
    """``[start, stop)`` of part ``index`` of ``torch.tensor_split`` of a length-``n`` axis into ``count`` parts
    (the first ``n % count`` parts have one more element)."""
    size, extra = divmod(n, count)
    start = index * size + min(index, extra)
    return start, start + size + (1 if index < extra else 0)


@dataclass(frozen=True)
class TensorWindow:
    """The part of one tensor a request asks for: a ``slice`` and/or a ``shard`` (taken within the slice), as
    ``POST /v1/tensor`` takes them. Build it with :func:`tensor_window` (validated there)."""

    slice: tuple[tuple[int, int], ...] | None = None
    shard: ShardDict | None = None

    def to_json(self) -> dict[str, Any]:
        """The window's fields of a ``POST /v1/tensor`` body."""
        body: dict[str, Any] = {}
        if self.slice is not None:
            body["slice"] = [list(pair) for pair in self.slice]
        if self.shard is not None:
            body["shard"] = dict(self.shard)
        return body

    def box(self, shape: Sequence[int]) -> Box | None:
        """The box of a tensor of ``shape`` this window is (what ``X-Initserve-Window`` reports), or None when
        it is the whole tensor (the service answers it as no window) or does not fit the shape (the service
        refuses such a request)."""
        slices = self.slice or ()
        if len(slices) > len(shape) or any(not stop <= n for (_, stop), n in zip(slices, shape, strict=False)):
            return None
        box = [*slices, *((0, n) for n in shape[len(slices):])]
        if self.shard is not None:
            dim = self.shard["dim"]
            if not -len(shape) <= dim < len(shape):
                return None
            start, stop = box[dim]
            low, high = split_bounds(stop - start, self.shard["index"], self.shard["count"])
            box[dim] = (start + low, start + high)
        return None if all(pair == (0, n) for pair, n in zip(box, shape, strict=True)) else tuple(box)


def tensor_window(slice: Slice | None = None, shard: Shard | None = None) -> TensorWindow | None:
    """The window of a ``tensor``/``download_tensor`` call (None: the whole tensor), validated."""
    if slice is None and shard is None:
        return None
    pairs = None if slice is None else tuple((start, stop) for start, stop in check_pairs(slice, "slice", True))
    return TensorWindow(pairs, None if shard is None else check_shard(shard))


def model_windows(slices: Mapping[str, Slice] | None, shards: Mapping[str, Shard] | None) -> dict[str, Any]:
    """The ``slices`` and ``shards`` fields of a ``POST /v1/model`` body (tensor name → window), validated;
    empty or None ones are left out (they would change the answer's metadata, not its tensors)."""
    fields: dict[str, Any] = {}
    for key, windows, check in (("slices", slices, _check_slice), ("shards", shards, check_shard)):
        if windows is None:
            continue
        if not isinstance(windows, Mapping):
            raise InvalidSpec(key, windows, "must map tensor names to windows")
        checked = {}
        for name, window in windows.items():
            if not isinstance(name, str) or not name:
                raise InvalidSpec(f"{key}.{name}", name, "keys must be tensor names")
            checked[name] = check(window, f"{key}.{name}")
        if checked:
            fields[key] = checked
    return fields


def _check_slice(value: Any, field: str) -> list[list[int]]:
    return check_pairs(value, field, ordered=True)


def tensor_spec(method: MethodName | TensorSpec, shape: Sequence[int] | None, params: Mapping[str, Any]) -> TensorSpec:
    """The spec of a call given either a :class:`TensorSpec` (and nothing else) or a method, shape and kwargs."""
    if isinstance(method, TensorSpec):
        if shape is not None:
            raise InvalidSpec("shape", shape, "given twice: pass a TensorSpec alone, or a method and a shape")
        if params:
            key = next(iter(params))
            raise InvalidSpec(key, params[key], "given twice: pass a TensorSpec alone, or a method and keyword arguments")
        return method
    if shape is None:
        raise InvalidSpec("shape", None, "is required with a method name")
    return TensorSpec.of(method, shape, **params)


# --- models ------------------------------------------------------------------------------------------------


def check_layers(layers: Any, field: str = "layers") -> list[dict[str, Any]]:
    """Layers as ``POST /v1/model`` takes them: a non-empty list of objects with a ``type``; their ``init``
    entries are checked as initializations. Layer fields themselves are the service's to judge."""
    if isinstance(layers, str | bytes | Mapping) or not isinstance(layers, Sequence) or not layers:
        raise InvalidSpec(field, layers, 'must be a non-empty list of layers such as {"type": "linear", ...}')
    checked = []
    for index, layer in enumerate(layers):
        where = f"{field}.{index}"
        if not isinstance(layer, Mapping):
            raise InvalidSpec(where, layer, "must be an object with a 'type'")
        if not isinstance(layer.get("type"), str):
            raise InvalidSpec(f"{where}.type", layer.get("type"), "is required: a layer type such as 'linear'")
        body = jsonable(layer, where)
        init = layer.get("init")
        if layer["type"] == "tensor":
            body["init"] = check_init(init, f"{where}.init")
            body["shape"] = check_shape(layer.get("shape"), f"{where}.shape")
        elif init is not None:
            if not isinstance(init, Mapping):
                raise InvalidSpec(f"{where}.init", init, "must map parameter names or roles to initializations")
            body["init"] = {key: check_init(spec, f"{where}.init.{key}") for key, spec in init.items()}
        checked.append(body)
    return checked


def check_scheme(scheme: Any, field: str = "scheme") -> str | dict[str, Any]:
    """A preset name, or ``{"weight": init, "bias": init}`` (either may be absent or None)."""
    if isinstance(scheme, str):
        return check_choice(scheme, PRESETS, field)
    if not isinstance(scheme, Mapping):
        raise InvalidSpec(field, scheme, f"must be one of: {', '.join(PRESETS)}, or {{'weight': init, 'bias': init}}")
    rules = {}
    for role, init in scheme.items():
        if role not in SCHEME_ROLES:
            raise InvalidSpec(f"{field}.{role}", init, "unknown role; known: weight, bias")
        if init is not None:
            rules[role] = check_init(init, f"{field}.{role}")
    return rules


def model_body(layers: Sequence[Mapping[str, Any]], framework: Framework, scheme: Scheme, seed: int,
               dtype: ModelDType, n_layer: int | None, *, slices: Mapping[str, Slice] | None = None,
               shards: Mapping[str, Shard] | None = None) -> dict[str, Any]:
    """The body of ``POST /v1/model`` (and, without windows, of a model sent to ``POST /v1/stats``)."""
    body: dict[str, Any] = {
        "layers": check_layers(layers),
        "framework": check_choice(framework, FRAMEWORKS, "framework"),
        "scheme": check_scheme(scheme),
        "seed": check_seed(seed),
        "dtype": check_choice(dtype, MODEL_DTYPES, "dtype"),
    }
    if n_layer is not None:
        body["n_layer"] = check_int(n_layer, "n_layer")
    return body | model_windows(slices, shards)


def propagation_body(layers: Sequence[Mapping[str, Any]], framework: Framework, scheme: Scheme, seed: int,
                     n_layer: int | None, batch_size: int, input: Mapping[str, Any] | None,
                     input_shape: Sequence[int] | None) -> dict[str, Any]:
    """The body of ``POST /v1/stats/propagation``."""
    body: dict[str, Any] = {
        "layers": check_layers(layers),
        "framework": check_choice(framework, FRAMEWORKS, "framework"),
        "scheme": check_scheme(scheme),
        "seed": check_seed(seed),
        "batch_size": check_int(batch_size, "batch_size"),
    }
    if n_layer is not None:
        body["n_layer"] = check_int(n_layer, "n_layer")
    if input is not None:
        body["input"] = check_init(input, "input")
    if input_shape is not None:
        body["input_shape"] = check_shape(input_shape, "input_shape")
    return body


def tensor_names(tensors: Sequence[str] | None) -> str | None:
    """The ``tensors`` query parameter of ``/v1/model`` (comma-separated names), or None for every tensor."""
    if tensors is None:
        return None
    if isinstance(tensors, str) or not isinstance(tensors, Sequence) or not tensors:
        raise InvalidSpec("tensors", tensors, "must be a non-empty list of tensor names")
    for index, name in enumerate(tensors):
        if not isinstance(name, str) or not name or "," in name:
            raise InvalidSpec(f"tensors.{index}", name, "must be a non-empty tensor name without commas")
    return ",".join(tensors)



def check_path(path: Any) -> str | os.PathLike[str]:
    """The file to write: a non-empty ``str`` or path-like."""
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise InvalidSpec("path", path, "is required: the file to write (path=...)")
    return path
