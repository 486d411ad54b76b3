"""Keras 3: layer and weight names, kernel layouts ``[*kernel, in, out]`` and the layers' default initializers.

Layers are named like Keras names them (the snake-case class name, then
``_1``, ``_2`` … for later layers of the same class) and tensors
``{layer}/{weight}`` (recurrent cells add ``{cell}/``), as in a weight's
``path`` without the model prefix. Defaults (the constructors' arguments):
kernels ``glorot_uniform``, recurrent kernels ``orthogonal``, biases zeros
(LSTM: ``unit_forget_bias``, ones on the forget gate ``[units, 2·units)``),
embeddings U(−0.05, 0.05), normalization scales 1 and shifts 0, moving mean 0
and moving variance 1.

Keras has no ``num_layers``, ``bidirectional`` or ``proj_size`` on its
recurrent layers, no bias_k/bias_v in MultiHeadAttention and no groups in
transposed convolutions: such requests are refused (list one layer per
stacked layer instead).
"""

from __future__ import annotations

from collections.abc import Callable

from initserve.core.errors import SpecError
from initserve.core.model.layers import Config
from initserve.core.model.parameter import ONES, ZEROS, Init, Parameter, scale_and_shift

GLOROT = Init("xavier_uniform")
ORTHOGONAL = Init("orthogonal")

LAYER_NAMES = {
    "linear": "dense",
    **{f"conv{d}d": f"conv{d}d" for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": f"conv{d}d_transpose" for d in (1, 2, 3)},
    "embedding": "embedding",
    "layer_norm": "layer_normalization",
    "rms_norm": "rms_normalization",
    **{f"batch_norm{d}d": "batch_normalization" for d in (1, 2, 3)},
    "rnn": "simple_rnn",
    "lstm": "lstm",
    "gru": "gru",
    "multihead_attention": "multi_head_attention",
}


def refuse(field: str, value: object, framework: str, what: str) -> SpecError:
    """The error for a layer option the framework does not have."""
    return SpecError(field, value, f"framework {framework!r} has no {what}")


def _kernel(shape: tuple[int, ...], out: int, bias: bool) -> list[Parameter]:
    params = [Parameter("kernel", shape, "weight", GLOROT)]
    if bias:
        params.append(Parameter("bias", (out,), "bias", ZEROS))
    return params


def _conv(transposed: bool) -> Callable[[Config], list[Parameter]]:
    def build(c: Config) -> list[Parameter]:
        kernel, groups = tuple(c["kernel_size"]), c["groups"]
        if transposed and groups != 1:
            raise refuse("groups", groups, "keras", "groups in transposed convolutions")
        channels = (c["out_channels"], c["in_channels"]) if transposed else (c["in_channels"] // groups, c["out_channels"])
        return _kernel((*kernel, *channels), c["out_channels"], c["bias"])

    return build


def _embedding(c: Config) -> list[Parameter]:
    if c["padding_idx"] is not None:
        raise refuse("padding_idx", c["padding_idx"], "keras", "padding_idx (mask_zero masks inputs, not weights)")
    init = Init("uniform", {"low": -0.05, "high": 0.05})
    return [Parameter("embeddings", (c["num_embeddings"], c["embedding_dim"]), "weight", init)]


def _norm(c: Config, shift: bool) -> list[Parameter]:
    if not c["elementwise_affine"]:
        return []
    return scale_and_shift(tuple(c["normalized_shape"]), "gamma", "beta" if shift else None)


def _rms_norm(c: Config) -> list[Parameter]:
    return scale_and_shift(tuple(c["normalized_shape"]), "scale", None) if c["elementwise_affine"] else []


def _batch_norm(c: Config) -> list[Parameter]:
    shape = (c["num_features"],)
    params = []
    if c["affine"]:
        params += scale_and_shift(shape, "gamma", "beta")
    return params + [Parameter("moving_mean", shape, "state", ZEROS, schemed=False),
                     Parameter("moving_variance", shape, "state", ONES, schemed=False)]


def check_single_recurrent(c: Config, framework: str) -> None:
    """Refuse the torch-only options of recurrent layers."""
    if c["num_layers"] != 1:
        raise refuse("num_layers", c["num_layers"], framework, "num_layers (list one recurrent layer per stacked layer)")
    if c["bidirectional"]:
        raise refuse("bidirectional", True, framework, "bidirectional flag on recurrent layers")
    if c.get("proj_size", 0):
        raise refuse("proj_size", c["proj_size"], framework, "proj_size")


def _recurrent(cell: str, gates: int) -> Callable[[Config], list[Parameter]]:
    def build(c: Config) -> list[Parameter]:
        check_single_recurrent(c, "keras")
        units, width = c["hidden_size"], gates * c["hidden_size"]
        params = [Parameter(f"{cell}/kernel", (c["input_size"], width), "weight", GLOROT),
                  Parameter(f"{cell}/recurrent_kernel", (units, width), "weight", ORTHOGONAL)]
        if c["bias"]:
            if gates == 4:  # unit_forget_bias: ones on the forget gate, zeros elsewhere
                bias = Init("ones", zero_rows=((0, units), (2 * units, width)))
                params.append(Parameter(f"{cell}/bias", (width,), "bias", bias))
            else:  # GRU: reset_after=True keeps an input and a recurrent bias
                params.append(Parameter(f"{cell}/bias", (2, width) if gates == 3 else (width,), "bias", ZEROS))
        return params

    return build


def einsum_attention(framework: str, output: str, kernel: Init,
                     flattened: bool) -> Callable[[Config], list[Parameter]]:
    """Attention as einsum projections (Keras ``MultiHeadAttention``, Flax ``MultiHeadDotProductAttention``).

    Kernels ``[features, heads, head_dim]`` for query/key/value and ``[heads, head_dim, embed]`` for the
    output projection named ``output``; biases ``[heads, head_dim]`` and ``[embed]``. ``flattened``: the
    kernels are initialized as their 2-D matrix and reshaped (Flax ``DenseGeneral``).
    """

    def build(c: Config) -> list[Parameter]:
        if c["add_bias_kv"]:
            raise refuse("add_bias_kv", True, framework, "add_bias_kv in its attention layer")
        embed, heads = c["embed_dim"], c["num_heads"]
        head = embed // heads
        params = []
        for name, features in (("query", embed), ("key", c["kdim"] or embed), ("value", c["vdim"] or embed)):
            matrix = (features, embed) if flattened else None
            params.append(Parameter(f"{name}/kernel", (features, heads, head), "weight", kernel, matrix=matrix))
            if c["bias"]:
                params.append(Parameter(f"{name}/bias", (heads, head), "bias", ZEROS))
        matrix = (embed, embed) if flattened else None
        params.append(Parameter(f"{output}/kernel", (heads, head, embed), "weight", kernel, matrix=matrix))
        if c["bias"]:
            params.append(Parameter(f"{output}/bias", (embed,), "bias", ZEROS))
        return params

    return build


PARAMETERS: dict[str, Callable[[Config], list[Parameter]]] = {
    "linear": lambda c: _kernel((c["in_features"], c["out_features"]), c["out_features"], c["bias"]),
    **{f"conv{d}d": _conv(False) for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": _conv(True) for d in (1, 2, 3)},
    "embedding": _embedding,
    "layer_norm": lambda c: _norm(c, c["bias"]),
    "rms_norm": _rms_norm,
    **{f"batch_norm{d}d": _batch_norm for d in (1, 2, 3)},
    "rnn": _recurrent("simple_rnn_cell", 1),
    "lstm": _recurrent("lstm_cell", 4),
    "gru": _recurrent("gru_cell", 3),
    "multihead_attention": einsum_attention("keras", "attention_output", GLOROT, flattened=False),
}
