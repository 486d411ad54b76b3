"""PyTorch: ``state_dict`` names and shapes, and what each module's ``reset_parameters`` does.

Layers are named like ``nn.Sequential`` children (their index, or the given
name) and tensors ``{layer}.{parameter}``. Defaults, operation for operation:

- ``nn.Linear``, ``nn.Conv*d``, ``nn.ConvTranspose*d``: weight
  ``kaiming_uniform_(a=√5)``, i.e. U(±1/√fan_in); bias U(±1/√fan_in) with
  fan_in from the weight (for transposed convolutions ``out/groups · k``).
- ``nn.Embedding``: N(0, 1), row ``padding_idx`` zeroed.
- ``nn.LayerNorm``, ``nn.RMSNorm``, ``nn.BatchNorm*d``: scale 1, shift 0;
  ``running_mean`` 0, ``running_var`` 1, ``num_batches_tracked`` the int64 scalar 0.
- ``nn.RNN``/``nn.LSTM``/``nn.GRU``: every tensor U(±1/√hidden_size).
- ``nn.MultiheadAttention``: ``in_proj_weight`` (or q/k/v) ``xavier_uniform_``,
  ``in_proj_bias`` and ``out_proj.bias`` 0, ``out_proj.weight`` as ``nn.Linear``,
  ``bias_k``/``bias_v`` ``xavier_normal_``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from initserve.core.model.layers import Config
from initserve.core.model.parameter import ONES, ZEROS, Init, Parameter, scale_and_shift

LINEAR_WEIGHT = Init("kaiming_uniform", {"negative_slope": math.sqrt(5.0)})


def fan_in_bias(fan_in: int) -> Init:
    """U(±1/√fan_in) (0 when fan_in is 0), torch's bias for linear and convolution layers."""
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
    return Init("uniform", {"low": -bound, "high": bound}) if bound else ZEROS


def _affine(weight_shape: tuple[int, ...], out: int, fan_in: int, bias: bool) -> list[Parameter]:
    params = [Parameter("weight", weight_shape, "weight", LINEAR_WEIGHT)]
    if bias:
        params.append(Parameter("bias", (out,), "bias", fan_in_bias(fan_in)))
    return params


def _linear(c: Config) -> list[Parameter]:
    return _affine((c["out_features"], c["in_features"]), c["out_features"], c["in_features"], c["bias"])


def _conv(c: Config) -> list[Parameter]:
    kernel = c["kernel_size"]
    shape = (c["out_channels"], c["in_channels"] // c["groups"], *kernel)
    return _affine(shape, c["out_channels"], shape[1] * math.prod(kernel), c["bias"])


def _conv_transpose(c: Config) -> list[Parameter]:
    kernel = c["kernel_size"]
    shape = (c["in_channels"], c["out_channels"] // c["groups"], *kernel)
    return _affine(shape, c["out_channels"], shape[1] * math.prod(kernel), c["bias"])


def _embedding(c: Config) -> list[Parameter]:
    index = c["padding_idx"]
    rows = ((index, index + 1),) if index is not None else ()
    return [Parameter("weight", (c["num_embeddings"], c["embedding_dim"]), "weight", Init("normal"), zero_rows=rows)]


def _norm(c: Config, bias: bool) -> list[Parameter]:
    if not c["elementwise_affine"]:
        return []
    return scale_and_shift(tuple(c["normalized_shape"]), "weight", "bias" if bias else None)


def _batch_norm(c: Config) -> list[Parameter]:
    shape = (c["num_features"],)
    params = []
    if c["affine"]:
        params += scale_and_shift(shape, "weight", "bias")
    if c["track_running_stats"]:
        params += [Parameter("running_mean", shape, "state", ZEROS, schemed=False),
                   Parameter("running_var", shape, "state", ONES, schemed=False),
                   Parameter("num_batches_tracked", (), "state", ZEROS, schemed=False, dtype="int64")]
    return params


def _recurrent(gates: int) -> Callable[[Config], list[Parameter]]:
    def build(c: Config) -> list[Parameter]:
        hidden, proj = c["hidden_size"], c.get("proj_size", 0)
        real_hidden = proj or hidden
        directions = 2 if c["bidirectional"] else 1
        stdv = 1.0 / math.sqrt(hidden)
        init = Init("uniform", {"low": -stdv, "high": stdv})
        params = []
        for layer in range(c["num_layers"]):
            inputs = c["input_size"] if layer == 0 else real_hidden * directions
            for suffix in ("", "_reverse")[:directions]:
                tag = f"_l{layer}{suffix}"
                params += [Parameter(f"weight_ih{tag}", (gates * hidden, inputs), "weight", init),
                           Parameter(f"weight_hh{tag}", (gates * hidden, real_hidden), "weight", init)]
                if c["bias"]:
                    params += [Parameter(f"bias_ih{tag}", (gates * hidden,), "bias", init),
                               Parameter(f"bias_hh{tag}", (gates * hidden,), "bias", init)]
                if proj:
                    params.append(Parameter(f"weight_hr{tag}", (proj, hidden), "weight", init))
        return params

    return build


def _attention(c: Config) -> list[Parameter]:
    embed = c["embed_dim"]
    kdim, vdim = c["kdim"] or embed, c["vdim"] or embed
    xavier = Init("xavier_uniform")
    if kdim == embed and vdim == embed:
        params = [Parameter("in_proj_weight", (3 * embed, embed), "weight", xavier)]
    else:
        params = [Parameter(f"{name}_proj_weight", (embed, dim), "weight", xavier)
                  for name, dim in (("q", embed), ("k", kdim), ("v", vdim))]
    if c["bias"]:
        params.append(Parameter("in_proj_bias", (3 * embed,), "bias", ZEROS))
    if c["add_bias_kv"]:
        params += [Parameter(f"bias_{name}", (1, 1, embed), "bias", Init("xavier_normal")) for name in "kv"]
    params.append(Parameter("out_proj.weight", (embed, embed), "weight", LINEAR_WEIGHT))
    if c["bias"]:
        params.append(Parameter("out_proj.bias", (embed,), "bias", ZEROS))
    return params


PARAMETERS: dict[str, Callable[[Config], list[Parameter]]] = {
    "linear": _linear,
    **{f"conv{d}d": _conv for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": _conv_transpose for d in (1, 2, 3)},
    "embedding": _embedding,
    "layer_norm": lambda c: _norm(c, c["bias"]),
    "rms_norm": lambda c: _norm(c, False),
    **{f"batch_norm{d}d": _batch_norm for d in (1, 2, 3)},
    "rnn": _recurrent(1),
    "lstm": _recurrent(4),
    "gru": _recurrent(3),
    "multihead_attention": _attention,
}
