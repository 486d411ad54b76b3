"""PyTorch adapter: initialize a ``torch.nn.Module`` in place with the service's tensors.

:func:`layers_of` walks ``module.named_modules()`` and describes every supported
module as one ``POST /v1/model`` layer, named by its qualified name, so the
service's tensor names are exactly the module's ``state_dict`` keys.
:func:`initialize` fetches those tensors (``framework="torch"``, in the module's
parameter dtype) and copies them into the parameters and buffers under
``torch.no_grad()``::

    from torch import nn
    from initserve_client import Client
    from initserve_client.torch import initialize

    net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))
    with Client("http://127.0.0.1:8000") as client:
        report = initialize(net, client=client, scheme="he", seed=1, nonlinearities={"0": "relu"})

The values depend only on the layers, the scheme, the seed and the dtype: every
process (and every machine) gets the same parameters, byte for byte equal to
``/v1/model`` for ``layers_of(net)``. ``torch.manual_seed`` plays no part.

Supported modules (subclasses included): ``nn.Linear``, ``nn.Conv1d/2d/3d``,
``nn.ConvTranspose1d/2d/3d``, ``nn.Embedding`` (``padding_idx`` row kept at
zero), ``nn.LayerNorm``, ``nn.RMSNorm``, ``nn.BatchNorm1d/2d/3d`` and
``nn.SyncBatchNorm``, ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (``num_layers``,
``bias``, ``bidirectional``, ``proj_size``) and ``nn.MultiheadAttention``
(``kdim``/``vdim``, ``bias``, ``add_bias_kv``). Their children (the attention's
``out_proj``) belong to them. Containers without parameters of their own
(``nn.Sequential``, ``nn.ModuleList``, custom modules) are walked through.

Any other module owning parameters or buffers directly (a custom
``nn.Parameter`` on a container, a parametrized or lazy module, …) is a
``ValueError`` naming it; with ``strict=False`` its tensors are left untouched and
listed in :attr:`Report.skipped`.

A supported module at the root (``initialize(nn.Linear(3, 4), …)``) has no
qualified name: it is sent as layer ``"0"``, as if wrapped in ``nn.Sequential``,
and its tensors are copied to ``weight``, ``bias`` ….
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

try:
    import torch  # type: ignore[import-not-found, unused-ignore]
    from torch import nn  # type: ignore[import-not-found, unused-ignore]
except ImportError as error:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "initserve_client.torch needs PyTorch: pip install 'initserve-client[torch]'"
    ) from error

from initserve_client import Client
from initserve_client.catalog import ModelDType, Nonlinearity
from initserve_client.client import client_session
from initserve_client.specs import Scheme

__all__ = ["Activation", "Report", "initialize", "layers_of"]

Layer = dict[str, Any]
Activation = Nonlinearity | tuple[Nonlinearity, float]
"""The activation after a layer: ``"relu"``, or ``("leaky_relu", 0.2)`` with its negative slope."""

ROOT_LAYER_NAME = "0"
"""The layer name a supported root module is sent under (its tensors have no prefix in ``state_dict``)."""

_DTYPES: dict[torch.dtype, ModelDType] = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}


@dataclass(frozen=True)
class Report:
    """What :func:`initialize` did.

    ``layers`` is the ``/v1/model`` layer list that was sent and ``dtype`` the
    dtype requested; ``initialized`` the ``state_dict`` keys copied from the
    service, in ``state_dict`` order; ``skipped`` the keys left untouched (only
    with ``strict=False``); ``aliases`` maps each other key of a shared tensor
    (tied weights, a module registered twice) to the initialized key whose
    values it holds.
    """

    layers: list[Layer]
    initialized: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    dtype: ModelDType = "float32"


def _ints(value: Any) -> list[int]:
    return [int(v) for v in value] if isinstance(value, tuple | list) else [int(value)]


def _linear(m: nn.Linear) -> Layer:
    return {"type": "linear", "in_features": m.in_features, "out_features": m.out_features,
            "bias": m.bias is not None}


def _conv(kind: str) -> Callable[[Any], Layer]:
    def describe(m: Any) -> Layer:
        return {"type": kind, "in_channels": int(m.in_channels), "out_channels": int(m.out_channels),
                "kernel_size": _ints(m.kernel_size), "groups": int(m.groups), "bias": m.bias is not None}

    return describe


def _embedding(m: nn.Embedding) -> Layer:
    layer: Layer = {"type": "embedding", "num_embeddings": m.num_embeddings, "embedding_dim": m.embedding_dim}
    if m.padding_idx is not None:
        layer["padding_idx"] = int(m.padding_idx)
    return layer


def _layer_norm(m: nn.LayerNorm) -> Layer:
    return {"type": "layer_norm", "normalized_shape": _ints(m.normalized_shape),
            "elementwise_affine": bool(m.elementwise_affine), "bias": getattr(m, "bias", None) is not None}


def _rms_norm(m: Any) -> Layer:
    return {"type": "rms_norm", "normalized_shape": _ints(m.normalized_shape),
            "elementwise_affine": bool(m.elementwise_affine)}


def _batch_norm(kind: str) -> Callable[[Any], Layer]:
    def describe(m: Any) -> Layer:
        return {"type": kind, "num_features": int(m.num_features), "affine": bool(m.affine),
                "track_running_stats": bool(m.track_running_stats)}

    return describe


def _recurrent(m: nn.RNNBase) -> Layer:
    kind = {"LSTM": "lstm", "GRU": "gru"}.get(m.mode, "rnn")  # RNN_TANH, RNN_RELU
    layer: Layer = {"type": kind, "input_size": m.input_size, "hidden_size": m.hidden_size,
                    "num_layers": m.num_layers, "bias": bool(m.bias), "bidirectional": bool(m.bidirectional)}
    if kind == "lstm" and m.proj_size:
        layer["proj_size"] = m.proj_size
    return layer


def _attention(m: nn.MultiheadAttention) -> Layer:
    layer: Layer = {"type": "multihead_attention", "embed_dim": m.embed_dim, "num_heads": m.num_heads,
                    "bias": m.in_proj_bias is not None, "add_bias_kv": m.bias_k is not None}
    if m.kdim != m.embed_dim or m.vdim != m.embed_dim:
        layer["kdim"], layer["vdim"] = m.kdim, m.vdim
    return layer


# First match wins (isinstance): the module classes the service knows and how to describe them.
_SUPPORTED: tuple[tuple[type[nn.Module], Callable[[Any], Layer]], ...] = (
    (nn.Linear, _linear),
    (nn.Conv1d, _conv("conv1d")),
    (nn.Conv2d, _conv("conv2d")),
    (nn.Conv3d, _conv("conv3d")),
    (nn.ConvTranspose1d, _conv("conv_transpose1d")),
    (nn.ConvTranspose2d, _conv("conv_transpose2d")),
    (nn.ConvTranspose3d, _conv("conv_transpose3d")),
    (nn.Embedding, _embedding),
    (nn.LayerNorm, _layer_norm),
    *(((nn.RMSNorm, _rms_norm),) if hasattr(nn, "RMSNorm") else ()),
    (nn.BatchNorm1d, _batch_norm("batch_norm1d")),
    (nn.BatchNorm2d, _batch_norm("batch_norm2d")),
    (nn.BatchNorm3d, _batch_norm("batch_norm3d")),
    (nn.SyncBatchNorm, _batch_norm("batch_norm1d")),  # the same tensors whatever the dimensions
    (nn.RNNBase, _recurrent),
    (nn.MultiheadAttention, _attention),
)


def _describe(module: nn.Module) -> Layer | None:
    """The ``/v1/model`` layer for a supported module (no name), or None."""
    if _is_parametrized(module):
        return None  # its weights live under parametrizations.*: not the tensors the service names
    for cls, describe in _SUPPORTED:
        if isinstance(module, cls):
            return describe(module)
    return None


def _is_parametrized(module: nn.Module) -> bool:
    return isinstance(getattr(module, "parametrizations", None), nn.ModuleDict)


def _own_tensors(module: nn.Module) -> list[str]:
    """The names of the parameters and buffers a module owns directly (not its children's)."""
    return [name for name, value in [*module._parameters.items(), *module._buffers.items()] if value is not None]


def _check_materialized(module: nn.Module) -> None:
    for name, value in [*module.named_parameters(), *module.named_buffers()]:
        if torch.nn.parameter.is_lazy(value):
            raise ValueError(f"{name!r} is an uninitialized lazy tensor: run a forward pass first to give it a shape")


@dataclass(frozen=True)
class _Walk:
    """The layers derived from a module, which module each came from, and the tensors nobody covers."""

    layers: list[Layer]
    modules: dict[str, str]  # layer name → qualified module name ("" for the root)
    unsupported: list[tuple[str, nn.Module, list[str]]]  # (qualified name, module, its own tensor names)


def _walk(module: nn.Module, nonlinearities: Mapping[str, Activation] | None) -> _Walk:
    _check_materialized(module)
    layers: list[Layer] = []
    modules: dict[str, str] = {}
    unsupported: list[tuple[str, nn.Module, list[str]]] = []
    owned: list[str] = []  # qualified names of supported modules: their descendants belong to them
    for name, child in module.named_modules():
        if owned and (owned[0] == "" or name.startswith(tuple(f"{parent}." for parent in owned))):
            continue
        layer = _describe(child)
        if layer is None:
            own = _own_tensors(child)
            if own:
                unsupported.append((name, child, own))
            continue
        owned.append(name)
        if not child.state_dict():
            continue  # nothing to initialize (LayerNorm without affine, …)
        layer["name"] = name or ROOT_LAYER_NAME
        modules[layer["name"]] = name
        layers.append(layer)
    by_module = {module_name: layer for layer, module_name in zip(layers, modules.values(), strict=True)}
    for module_name, activation in (nonlinearities or {}).items():
        if module_name not in by_module:
            known = ", ".join(repr(n) for n in by_module) or "none"
            raise ValueError(f"nonlinearities: {module_name!r} is not a module initserve initializes; known: {known}")
        if isinstance(activation, tuple):
            by_module[module_name]["nonlinearity"], by_module[module_name]["negative_slope"] = activation
        else:
            by_module[module_name]["nonlinearity"] = activation
    return _Walk(layers, modules, unsupported)


def _unsupported_error(name: str, module: nn.Module, tensors: list[str]) -> ValueError:
    what = "a parametrized module" if _is_parametrized(module) else "not a module type initserve knows"
    return ValueError(
        f"module {name or '<root>'!r} ({type(module).__name__}) owns tensors initserve cannot initialize "
        f"({', '.join(tensors)}): {what}; pass strict=False to leave them untouched"
    )


def layers_of(module: nn.Module, *, nonlinearities: Mapping[str, Activation] | None = None,
              strict: bool = True) -> list[Layer]:
    """The ``POST /v1/model`` layers (framework ``torch``) of ``module``'s supported submodules.

    Each layer is named by the module's qualified name (``"encoder.0"``), so the
    service's tensor names are the module's ``state_dict`` keys; sizes and flags
    are read from the modules. ``nonlinearities`` maps qualified module names to
    the activation that follows them (``"relu"``, or ``("leaky_relu", 0.2)``), which
    sets the gain of schemes such as ``he`` and ``xavier``.

    Raises ``ValueError`` naming the first module owning parameters or buffers of
    an unsupported kind, unless ``strict`` is false (they are then left out).
    """
    walk = _walk(module, nonlinearities)
    if strict and walk.unsupported:
        raise _unsupported_error(*walk.unsupported[0])
    return walk.layers


def _dtype_of(state: Mapping[str, torch.Tensor], keys: list[str]) -> ModelDType:
    """The single floating dtype of the tensors to initialize (``float32`` when there is none)."""
    found = {state[key].dtype for key in keys if state[key].is_floating_point()}
    if len(found) > 1:
        listed = ", ".join(sorted(str(d) for d in found))
        raise ValueError(f"the module mixes floating dtypes ({listed}): pass dtype= to choose one")
    if not found:
        return "float32"
    dtype = found.pop()
    if dtype not in _DTYPES:
        raise ValueError(f"the module's dtype {dtype} is not one initserve serves ({', '.join(_DTYPES.values())})")
    return _DTYPES[dtype]


def _as_torch(array: np.ndarray[Any, Any], dtype: torch.dtype) -> torch.Tensor:
    """A numpy array from the client as a torch tensor of ``dtype``, exactly (bfloat16 bit for bit)."""
    if array.dtype.name == "bfloat16":  # ml_dtypes: reinterpret the bits
        return torch.from_numpy(np.ascontiguousarray(array).view(np.int16).copy()).view(torch.bfloat16)
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, copy=True, order="C")
    tensor = torch.from_numpy(array)
    # float32 arrays holding bfloat16 values (no ml_dtypes) convert exactly; everything else already matches
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


def _groups(state: Mapping[str, torch.Tensor]) -> list[list[str]]:
    """The ``state_dict`` keys grouped by tensor object (tied weights share one), in ``state_dict`` order."""
    groups: dict[int, list[str]] = {}
    for key, value in state.items():
        groups.setdefault(id(value), []).append(key)
    return list(groups.values())


def initialize(module: nn.Module, *, client: Client | None = None, base_url: str | None = None,
               scheme: Scheme = "framework", seed: int = 0,
               nonlinearities: Mapping[str, Activation] | None = None, strict: bool = True,
               dtype: ModelDType | None = None, n_layer: int | None = None) -> Report:
    """Fetch ``layers_of(module)`` from ``/v1/model`` and copy every tensor into ``module`` in place.

    ``client`` (an open :class:`~initserve_client.Client`) or ``base_url`` (a client
    is opened and closed here) says where the service is. ``scheme``, ``seed`` and
    ``n_layer`` are sent as they are; ``dtype`` defaults to the module's parameter
    dtype (``float32``, ``float64``, ``float16`` or ``bfloat16``; a module mixing
    them needs an explicit one). ``nonlinearities`` and ``strict``: see
    :func:`layers_of`. With ``strict=False`` tensors of unsupported modules, and
    extra tensors of supported ones, are left untouched and reported.

    Nothing is copied unless every fetched tensor has a ``state_dict`` entry of the
    same shape (else ``ValueError``). A tensor shared by several keys (tied
    weights) receives the values of its first key in ``state_dict`` order that
    the service sent. Returns a :class:`Report`.
    """
    walk = _walk(module, nonlinearities)
    if strict and walk.unsupported:
        raise _unsupported_error(*walk.unsupported[0])
    state = module.state_dict(keep_vars=True)
    root = walk.modules.get(ROOT_LAYER_NAME) == ""
    prefixes = tuple(f"{name}." for name in walk.modules.values())
    covered = [key for key in state if root or key.startswith(prefixes)]  # under a module sent as a layer
    chosen = dtype or _dtype_of(state, covered)

    weights: dict[str, np.ndarray[Any, Any]] = {}
    if walk.layers:
        with client_session(client, base_url) as session:
            weights = session.model(walk.layers, framework="torch", scheme=scheme, seed=seed, dtype=chosen,
                                    n_layer=n_layer)
    strip = len(ROOT_LAYER_NAME) + 1 if root else 0
    fetched = {name[strip:]: array for name, array in weights.items()}
    for key, array in fetched.items():
        if key not in state:
            raise ValueError(f"the service sent {key!r}, which the module has no state_dict entry for: a module "
                             "derived from a supported torch class has renamed or replaced its tensors")
        if tuple(state[key].shape) != array.shape:
            raise ValueError(f"{key!r}: the service sent shape {list(array.shape)}, the module has "
                             f"{list(state[key].shape)}")

    sources: dict[str, str] = {}  # key → the fetched key whose values it receives
    for group in _groups(state):
        first = next((key for key in group if key in fetched), None)
        if first is not None:
            sources.update((key, first) for key in group)
    skipped = [key for key in state if key not in sources]
    if strict and skipped:
        raise ValueError(f"the service does not know these tensors of modules it initializes: {', '.join(skipped)} "
                         "(a subclass with tensors of its own?); pass strict=False to leave them untouched")
    with torch.no_grad():
        for key, source in sources.items():
            if key == source:
                state[key].copy_(_as_torch(fetched[key], state[key].dtype))
    return Report(
        layers=walk.layers,
        initialized=tuple(key for key in state if sources.get(key) == key),
        skipped=tuple(skipped),
        aliases={key: source for key, source in sources.items() if key != source},
        dtype=chosen,
    )
