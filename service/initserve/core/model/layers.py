"""The layer types a model may list: their fields, defaults and consistency checks.

Each type declares its fields once with :class:`~initserve.core.params.Param`
(the same declarations build the HTTP schema). :func:`layer_config` validates
one layer and returns its normalised configuration (``kernel_size`` as one
entry per spatial dimension, a negative ``padding_idx`` counted from the end),
raising :class:`SpecError` for missing sizes and impossible shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from initserve.core.errors import SpecError
from initserve.core.params import REQUIRED, Param, resolve_params

Config = dict[str, Any]


@dataclass(frozen=True)
class LayerType:
    """A catalogue entry: type name, aliases, fields, doc and its semantic check."""

    name: str
    aliases: tuple[str, ...]
    fields: tuple[Param, ...]
    doc: str
    check: Callable[[Config], Config]


def _size(name: str, doc: str, minimum: int = 1) -> Param:
    return Param(name, "int", REQUIRED, doc, minimum=minimum)


_BIAS = Param("bias", "bool", True, "whether the layer has a bias")


def _unchecked(config: Config) -> Config:
    return config


def _conv(dims: int) -> Callable[[Config], Config]:
    def check(config: Config) -> Config:
        kernel = config["kernel_size"]
        if len(kernel) not in (1, dims):
            raise SpecError("kernel_size", list(kernel), f"must be one integer or {dims} integers")
        groups = config["groups"]
        for name in ("in_channels", "out_channels"):
            if config[name] % groups:
                raise SpecError("groups", groups, f"must divide {name} ({config[name]})")
        return {**config, "kernel_size": kernel * dims if len(kernel) == 1 else kernel}

    return check


def _conv_type(name: str, dims: int, transposed: bool) -> LayerType:
    kind = "ConvTranspose" if transposed else "Conv"
    fields = (
        _size("in_channels", "input channels"),
        _size("out_channels", "output channels"),
        Param("kernel_size", "ints", REQUIRED, f"{dims} kernel sizes, or one for all", minimum=1),
        Param("groups", "int", 1, "blocked connections from input to output channels", minimum=1),
        _BIAS,
    )
    return LayerType(name, (), fields, f"nn.{kind}{dims}d", _conv(dims))


def _embedding(config: Config) -> Config:
    index, rows = config["padding_idx"], config["num_embeddings"]
    if index is not None:
        if not -rows <= index < rows:
            raise SpecError("padding_idx", index, f"must be within num_embeddings ({rows}), negative from the end")
        config = {**config, "padding_idx": index % rows}
    return config


def _lstm(config: Config) -> Config:
    if config["proj_size"] >= config["hidden_size"]:
        raise SpecError("proj_size", config["proj_size"], f"must be smaller than hidden_size ({config['hidden_size']})")
    return config


def _attention(config: Config) -> Config:
    if config["embed_dim"] % config["num_heads"]:
        raise SpecError("num_heads", config["num_heads"], f"must divide embed_dim ({config['embed_dim']})")
    return config


_RNN_FIELDS = (
    _size("input_size", "features of the input", minimum=0),
    _size("hidden_size", "features of the hidden state"),
    Param("num_layers", "int", 1, "stacked recurrent layers", minimum=1),
    _BIAS,
    Param("bidirectional", "bool", False, "a reverse direction too (suffix _reverse)"),
)
_NORMALIZED_SHAPE = Param("normalized_shape", "ints", REQUIRED, "trailing dimensions normalized over", minimum=0)
_AFFINE = Param("elementwise_affine", "bool", True, "learnable per-element scale (and shift)")

LAYER_TYPES: tuple[LayerType, ...] = (
    LayerType("linear", ("dense",), (_size("in_features", "input features", 0), _size("out_features", "output features", 0),
                                     _BIAS), "nn.Linear", _unchecked),
    *(_conv_type(f"conv{d}d", d, False) for d in (1, 2, 3)),
    *(_conv_type(f"conv_transpose{d}d", d, True) for d in (1, 2, 3)),
    LayerType("embedding", (), (_size("num_embeddings", "rows of the table"), _size("embedding_dim", "size of a row", 0),
                                Param("padding_idx", "int", None, "row kept at zero (negative: from the end)")),
              "nn.Embedding", _embedding),
    LayerType("layer_norm", (), (_NORMALIZED_SHAPE, _AFFINE, _BIAS), "nn.LayerNorm", _unchecked),
    LayerType("rms_norm", (), (_NORMALIZED_SHAPE, _AFFINE), "nn.RMSNorm", _unchecked),
    *(LayerType(f"batch_norm{d}d", (), (_size("num_features", "channels", 0),
                                       Param("affine", "bool", True, "learnable scale and shift"),
                                       Param("track_running_stats", "bool", True, "running mean and variance buffers")),
                f"nn.BatchNorm{d}d", _unchecked) for d in (1, 2, 3)),
    LayerType("rnn", (), _RNN_FIELDS, "nn.RNN (Elman, tanh or relu)", _unchecked),
    LayerType("lstm", (), (*_RNN_FIELDS, Param("proj_size", "int", 0, "LSTM with projections (0: none)", minimum=0)),
              "nn.LSTM", _lstm),
    LayerType("gru", (), _RNN_FIELDS, "nn.GRU", _unchecked),
    LayerType("multihead_attention", ("mha",),
              (_size("embed_dim", "model dimension"), _size("num_heads", "attention heads (must divide embed_dim)"),
               _BIAS, Param("add_bias_kv", "bool", False, "learned bias_k and bias_v"),
               Param("kdim", "int", None, "key features (default embed_dim)", minimum=1),
               Param("vdim", "int", None, "value features (default embed_dim)", minimum=1)),
              "nn.MultiheadAttention", _attention),
)

_BY_NAME = {name: t for t in LAYER_TYPES for name in (t.name, *t.aliases)}


def layer_type(name: Any) -> LayerType:
    """The layer type called ``name`` (or an alias)."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted([*_BY_NAME, "tensor"]))
        raise SpecError("type", name, f"unknown layer type; known: {known}") from None


def layer_config(kind: LayerType, given: Mapping[str, Any]) -> Config:
    """The validated, normalised configuration of one layer of type ``kind``."""
    return kind.check(resolve_params(kind.name, kind.fields, given, "layer type"))
