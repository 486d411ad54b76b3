"""Flax (linen): variable names, kernel layouts ``[*kernel, in, out]`` and the modules' default initializers.

Layers are named like ``@nn.compact`` modules name their children (class name
and a per-class counter: ``Dense_0``, ``Dense_1``, ``Conv_0`` …) and tensors by
their path in the variables dict: ``params/Dense_0/kernel``,
``batch_stats/BatchNorm_0/mean``; recurrent layers are ``nn.RNN`` around a
cell (``params/RNN_0/cell/hi/kernel``). Unflattening the names on ``/`` gives
the dict ``model.init`` returns.

Defaults: kernels ``lecun_normal`` (variance 1/fan_in, truncated at ±2σ),
recurrent kernels ``orthogonal``, biases zeros, ``Embed``
``variance_scaling(1, "fan_in", "normal", out_axis=0)`` — 1/features, the
``fan_out`` of the ``[num_embeddings, features]`` layout — and normalization
scales 1, shifts 0, batch mean 0 and variance 1. ``DenseGeneral`` kernels of
attention (``[embed, heads, head_dim]``, ``[heads, head_dim, embed]``) are
initialized as their flattened 2-D matrix and reshaped, as Flax does, so their
fans are those of the matrix.
"""

from __future__ import annotations

from collections.abc import Callable

from initserve.core.model.keras import check_single_recurrent, einsum_attention, refuse
from initserve.core.model.layers import Config
from initserve.core.model.parameter import ONES, ZEROS, Init, Parameter, scale_and_shift

LECUN = Init("lecun_normal")
ORTHOGONAL = Init("orthogonal")

LAYER_NAMES = {
    "linear": "Dense",
    **{f"conv{d}d": "Conv" for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": "ConvTranspose" for d in (1, 2, 3)},
    "embedding": "Embed",
    "layer_norm": "LayerNorm",
    "rms_norm": "RMSNorm",
    **{f"batch_norm{d}d": "BatchNorm" for d in (1, 2, 3)},
    "rnn": "RNN",
    "lstm": "RNN",
    "gru": "RNN",
    "multihead_attention": "MultiHeadDotProductAttention",
}


def _dense(prefix: str, shape: tuple[int, ...], bias: bool, init: Init = LECUN) -> list[Parameter]:
    params = [Parameter(f"{prefix}kernel", shape, "weight", init)]
    if bias:
        params.append(Parameter(f"{prefix}bias", shape[-1:], "bias", ZEROS))
    return params


def _conv(transposed: bool) -> Callable[[Config], list[Parameter]]:
    def build(c: Config) -> list[Parameter]:
        kernel, groups = tuple(c["kernel_size"]), c["groups"]
        if transposed and groups != 1:
            raise refuse("groups", groups, "flax", "groups in transposed convolutions")
        return _dense("", (*kernel, c["in_channels"] // groups, c["out_channels"]), c["bias"])

    return build


def _embedding(c: Config) -> list[Parameter]:
    if c["padding_idx"] is not None:
        raise refuse("padding_idx", c["padding_idx"], "flax", "padding_idx")
    init = Init("variance_scaling", {"scale": 1.0, "mode": "fan_out", "distribution": "normal"})
    return [Parameter("embedding", (c["num_embeddings"], c["embedding_dim"]), "weight", init)]


def _norm(c: Config, shift: bool) -> list[Parameter]:
    if not c["elementwise_affine"]:
        return []
    return scale_and_shift(tuple(c["normalized_shape"]), "scale", "bias" if shift else None)


def _batch_norm(c: Config) -> list[Parameter]:
    shape = (c["num_features"],)
    params = []
    if c["affine"]:
        params += scale_and_shift(shape, "scale", "bias")
    return params + [Parameter("mean", shape, "state", ZEROS, schemed=False, collection="batch_stats"),
                     Parameter("var", shape, "state", ONES, schemed=False, collection="batch_stats")]


# (input dense name and bias, hidden dense name and bias) per gate, in the order the cells create them
_CELLS = {
    "rnn": ((("i", True), ("h", False)),),
    "lstm": tuple(((f"i{g}", False), (f"h{g}", True)) for g in "ifgo"),
    "gru": ((("ir", True), ("hr", False)), (("iz", True), ("hz", False)), (("in", True), ("hn", True))),
}


def _recurrent(kind: str) -> Callable[[Config], list[Parameter]]:
    def build(c: Config) -> list[Parameter]:
        check_single_recurrent(c, "flax")
        if not c["bias"]:
            raise refuse("bias", False, "flax", "recurrent cells without biases")
        units = c["hidden_size"]
        params = []
        for (i_name, i_bias), (h_name, h_bias) in _CELLS[kind]:
            params += _dense(f"cell/{i_name}/", (c["input_size"], units), i_bias)
            params += _dense(f"cell/{h_name}/", (units, units), h_bias, ORTHOGONAL)
        return params

    return build


PARAMETERS: dict[str, Callable[[Config], list[Parameter]]] = {
    "linear": lambda c: _dense("", (c["in_features"], c["out_features"]), c["bias"]),
    **{f"conv{d}d": _conv(False) for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": _conv(True) for d in (1, 2, 3)},
    "embedding": _embedding,
    "layer_norm": lambda c: _norm(c, c["bias"]),
    "rms_norm": lambda c: _norm(c, False),
    **{f"batch_norm{d}d": _batch_norm for d in (1, 2, 3)},
    "rnn": _recurrent("rnn"),
    "lstm": _recurrent("lstm"),
    "gru": _recurrent("gru"),
    "multihead_attention": einsum_attention("flax", "out", LECUN, flattened=True),
}
