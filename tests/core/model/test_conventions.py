"""Keras 3 and Flax (linen): names, layouts and default initializers against their documented conventions.

Neither framework is installed, so the expectations are written out as literal tables, from the frameworks'
sources: Keras auto-names layers ``snake_case(class)`` then ``_1``, ``_2`` … and a weight's path is
``{layer}/{weight}`` (recurrent layers add ``{cell}/``); Flax names ``@nn.compact`` children
``{Class}_{n}`` and a variable's path is ``{collection}/{module}/…/{name}``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from initserve.core.distributions import Normal, TruncatedNormal, Uniform
from initserve.core.model import ModelTensor, resolve_model
from initserve.core.plans import Dense, Sampled
from initserve.core.special import TRUNCATED_NORMAL_STD_2

from .conftest import by_name, model_bytes, spec_bytes, spec_error, values

Spec = dict[str, Any]
Table = list[tuple[str, tuple[int, ...]]]

DENSE: Spec = {"type": "linear", "in_features": 3, "out_features": 4}
DENSE_2: Spec = {"type": "dense", "in_features": 4, "out_features": 2, "bias": False}
CONV1D: Spec = {"type": "conv1d", "in_channels": 4, "out_channels": 6, "kernel_size": 3}
CONV2D_GROUPS: Spec = {"type": "conv2d", "in_channels": 4, "out_channels": 6, "kernel_size": [3, 2], "groups": 2}
CONV3D: Spec = {"type": "conv3d", "in_channels": 2, "out_channels": 5, "kernel_size": 2, "bias": False}
CONVT1D: Spec = {"type": "conv_transpose1d", "in_channels": 4, "out_channels": 6, "kernel_size": 3}
CONVT2D: Spec = {"type": "conv_transpose2d", "in_channels": 4, "out_channels": 6, "kernel_size": [3, 2]}
CONVT3D: Spec = {"type": "conv_transpose3d", "in_channels": 2, "out_channels": 3, "kernel_size": 2, "bias": False}
EMBEDDING: Spec = {"type": "embedding", "num_embeddings": 10, "embedding_dim": 4}
LAYER_NORM: Spec = {"type": "layer_norm", "normalized_shape": 8}
LAYER_NORM_MULTI: Spec = {"type": "layer_norm", "normalized_shape": [3, 4], "bias": False}
LAYER_NORM_BARE: Spec = {"type": "layer_norm", "normalized_shape": 8, "elementwise_affine": False}
RMS_NORM: Spec = {"type": "rms_norm", "normalized_shape": 6}
BATCH_NORM: Spec = {"type": "batch_norm2d", "num_features": 5}
BATCH_NORM_1D_BARE: Spec = {"type": "batch_norm1d", "num_features": 3, "affine": False}
RNN: Spec = {"type": "rnn", "input_size": 3, "hidden_size": 5}
LSTM: Spec = {"type": "lstm", "input_size": 3, "hidden_size": 5}
LSTM_NO_BIAS: Spec = {"type": "lstm", "input_size": 2, "hidden_size": 3, "bias": False}
GRU: Spec = {"type": "gru", "input_size": 3, "hidden_size": 5}
MHA: Spec = {"type": "multihead_attention", "embed_dim": 8, "num_heads": 2}
MHA_KV: Spec = {"type": "mha", "embed_dim": 8, "num_heads": 4, "kdim": 5, "vdim": 3}
MHA_NO_BIAS: Spec = {"type": "multihead_attention", "embed_dim": 6, "num_heads": 3, "bias": False}

# (id, layers, expected [(name, shape)] in order)
KERAS: list[tuple[str, list[Spec], Table]] = [
    ("dense-twice", [DENSE, DENSE_2],
     [("dense/kernel", (3, 4)), ("dense/bias", (4,)), ("dense_1/kernel", (4, 2))]),
    ("convs", [CONV1D, CONV2D_GROUPS, CONV3D, CONV1D],
     [("conv1d/kernel", (3, 4, 6)), ("conv1d/bias", (6,)),
      ("conv2d/kernel", (3, 2, 2, 6)), ("conv2d/bias", (6,)),  # [kh, kw, in/groups, out]
      ("conv3d/kernel", (2, 2, 2, 2, 5)),
      ("conv1d_1/kernel", (3, 4, 6)), ("conv1d_1/bias", (6,))]),
    ("transposed-convs", [CONVT1D, CONVT2D, CONVT3D],
     [("conv1d_transpose/kernel", (3, 6, 4)), ("conv1d_transpose/bias", (6,)),  # [k, out, in]
      ("conv2d_transpose/kernel", (3, 2, 6, 4)), ("conv2d_transpose/bias", (6,)),
      ("conv3d_transpose/kernel", (2, 2, 2, 3, 2))]),
    ("embedding", [EMBEDDING, EMBEDDING],
     [("embedding/embeddings", (10, 4)), ("embedding_1/embeddings", (10, 4))]),
    ("norms", [LAYER_NORM, LAYER_NORM_MULTI, LAYER_NORM_BARE, RMS_NORM],
     [("layer_normalization/gamma", (8,)), ("layer_normalization/beta", (8,)),
      ("layer_normalization_1/gamma", (3, 4)), ("rms_normalization/scale", (6,))]),
    ("batch-norms", [BATCH_NORM, BATCH_NORM_1D_BARE],
     [("batch_normalization/gamma", (5,)), ("batch_normalization/beta", (5,)),
      ("batch_normalization/moving_mean", (5,)), ("batch_normalization/moving_variance", (5,)),
      ("batch_normalization_1/moving_mean", (3,)), ("batch_normalization_1/moving_variance", (3,))]),
    ("recurrent", [RNN, LSTM, GRU, LSTM_NO_BIAS],
     [("simple_rnn/simple_rnn_cell/kernel", (3, 5)), ("simple_rnn/simple_rnn_cell/recurrent_kernel", (5, 5)),
      ("simple_rnn/simple_rnn_cell/bias", (5,)),
      ("lstm/lstm_cell/kernel", (3, 20)), ("lstm/lstm_cell/recurrent_kernel", (5, 20)),
      ("lstm/lstm_cell/bias", (20,)),
      ("gru/gru_cell/kernel", (3, 15)), ("gru/gru_cell/recurrent_kernel", (5, 15)),
      ("gru/gru_cell/bias", (2, 15)),  # reset_after=True: input and recurrent bias
      ("lstm_1/lstm_cell/kernel", (2, 12)), ("lstm_1/lstm_cell/recurrent_kernel", (3, 12))]),
    ("attention", [MHA, MHA_KV, MHA_NO_BIAS],
     [("multi_head_attention/query/kernel", (8, 2, 4)), ("multi_head_attention/query/bias", (2, 4)),
      ("multi_head_attention/key/kernel", (8, 2, 4)), ("multi_head_attention/key/bias", (2, 4)),
      ("multi_head_attention/value/kernel", (8, 2, 4)), ("multi_head_attention/value/bias", (2, 4)),
      ("multi_head_attention/attention_output/kernel", (2, 4, 8)),
      ("multi_head_attention/attention_output/bias", (8,)),
      ("multi_head_attention_1/query/kernel", (8, 4, 2)), ("multi_head_attention_1/query/bias", (4, 2)),
      ("multi_head_attention_1/key/kernel", (5, 4, 2)), ("multi_head_attention_1/key/bias", (4, 2)),
      ("multi_head_attention_1/value/kernel", (3, 4, 2)), ("multi_head_attention_1/value/bias", (4, 2)),
      ("multi_head_attention_1/attention_output/kernel", (4, 2, 8)),
      ("multi_head_attention_1/attention_output/bias", (8,)),
      ("multi_head_attention_2/query/kernel", (6, 3, 2)), ("multi_head_attention_2/key/kernel", (6, 3, 2)),
      ("multi_head_attention_2/value/kernel", (6, 3, 2)),
      ("multi_head_attention_2/attention_output/kernel", (3, 2, 6))]),
]

FLAX: list[tuple[str, list[Spec], Table]] = [
    ("dense-twice", [DENSE, DENSE_2],
     [("params/Dense_0/kernel", (3, 4)), ("params/Dense_0/bias", (4,)), ("params/Dense_1/kernel", (4, 2))]),
    ("convs", [CONV1D, CONV2D_GROUPS, CONV3D],
     [("params/Conv_0/kernel", (3, 4, 6)), ("params/Conv_0/bias", (6,)),
      ("params/Conv_1/kernel", (3, 2, 2, 6)), ("params/Conv_1/bias", (6,)),  # feature_group_count: in/groups
      ("params/Conv_2/kernel", (2, 2, 2, 2, 5))]),
    ("transposed-convs", [CONVT1D, CONVT2D, CONVT3D],
     [("params/ConvTranspose_0/kernel", (3, 4, 6)), ("params/ConvTranspose_0/bias", (6,)),  # [*k, in, out]
      ("params/ConvTranspose_1/kernel", (3, 2, 4, 6)), ("params/ConvTranspose_1/bias", (6,)),
      ("params/ConvTranspose_2/kernel", (2, 2, 2, 2, 3))]),
    ("embedding", [EMBEDDING], [("params/Embed_0/embedding", (10, 4))]),
    ("norms", [LAYER_NORM, LAYER_NORM_MULTI, LAYER_NORM_BARE, RMS_NORM],
     [("params/LayerNorm_0/scale", (8,)), ("params/LayerNorm_0/bias", (8,)),
      ("params/LayerNorm_1/scale", (3, 4)), ("params/RMSNorm_0/scale", (6,))]),
    ("batch-norms", [BATCH_NORM, BATCH_NORM_1D_BARE],
     [("params/BatchNorm_0/scale", (5,)), ("params/BatchNorm_0/bias", (5,)),
      ("batch_stats/BatchNorm_0/mean", (5,)), ("batch_stats/BatchNorm_0/var", (5,)),
      ("batch_stats/BatchNorm_1/mean", (3,)), ("batch_stats/BatchNorm_1/var", (3,))]),
    ("lstm", [LSTM],
     [(f"params/RNN_0/cell/{name}", shape) for gate in "ifgo" for name, shape in
      ((f"i{gate}/kernel", (3, 5)), (f"h{gate}/kernel", (5, 5)), (f"h{gate}/bias", (5,)))]),
    ("gru-and-simple", [GRU, RNN],
     [("params/RNN_0/cell/ir/kernel", (3, 5)), ("params/RNN_0/cell/ir/bias", (5,)),
      ("params/RNN_0/cell/hr/kernel", (5, 5)),
      ("params/RNN_0/cell/iz/kernel", (3, 5)), ("params/RNN_0/cell/iz/bias", (5,)),
      ("params/RNN_0/cell/hz/kernel", (5, 5)),
      ("params/RNN_0/cell/in/kernel", (3, 5)), ("params/RNN_0/cell/in/bias", (5,)),
      ("params/RNN_0/cell/hn/kernel", (5, 5)), ("params/RNN_0/cell/hn/bias", (5,)),
      ("params/RNN_1/cell/i/kernel", (3, 5)), ("params/RNN_1/cell/i/bias", (5,)),
      ("params/RNN_1/cell/h/kernel", (5, 5))]),
    ("attention", [MHA, MHA_KV, MHA_NO_BIAS],
     [("params/MultiHeadDotProductAttention_0/query/kernel", (8, 2, 4)),
      ("params/MultiHeadDotProductAttention_0/query/bias", (2, 4)),
      ("params/MultiHeadDotProductAttention_0/key/kernel", (8, 2, 4)),
      ("params/MultiHeadDotProductAttention_0/key/bias", (2, 4)),
      ("params/MultiHeadDotProductAttention_0/value/kernel", (8, 2, 4)),
      ("params/MultiHeadDotProductAttention_0/value/bias", (2, 4)),
      ("params/MultiHeadDotProductAttention_0/out/kernel", (2, 4, 8)),
      ("params/MultiHeadDotProductAttention_0/out/bias", (8,)),
      ("params/MultiHeadDotProductAttention_1/query/kernel", (8, 4, 2)),
      ("params/MultiHeadDotProductAttention_1/query/bias", (4, 2)),
      ("params/MultiHeadDotProductAttention_1/key/kernel", (5, 4, 2)),
      ("params/MultiHeadDotProductAttention_1/key/bias", (4, 2)),
      ("params/MultiHeadDotProductAttention_1/value/kernel", (3, 4, 2)),
      ("params/MultiHeadDotProductAttention_1/value/bias", (4, 2)),
      ("params/MultiHeadDotProductAttention_1/out/kernel", (4, 2, 8)),
      ("params/MultiHeadDotProductAttention_1/out/bias", (8,)),
      ("params/MultiHeadDotProductAttention_2/query/kernel", (6, 3, 2)),
      ("params/MultiHeadDotProductAttention_2/key/kernel", (6, 3, 2)),
      ("params/MultiHeadDotProductAttention_2/value/kernel", (6, 3, 2)),
      ("params/MultiHeadDotProductAttention_2/out/kernel", (3, 2, 6))]),
]


def table(framework: str, layers: list[Spec]) -> Table:
    return [(t.name, t.shape) for t in resolve_model(layers, framework=framework).tensors]


@pytest.mark.parametrize("layers,expected", [c[1:] for c in KERAS], ids=[c[0] for c in KERAS])
def test_keras_names_and_shapes(layers: list[Spec], expected: Table) -> None:
    assert table("keras", layers) == expected


@pytest.mark.parametrize("layers,expected", [c[1:] for c in FLAX], ids=[c[0] for c in FLAX])
def test_flax_names_and_shapes(layers: list[Spec], expected: Table) -> None:
    assert table("flax", layers) == expected


@pytest.mark.parametrize("framework,cases", [("keras", KERAS), ("flax", FLAX)])
def test_every_tensor_is_byte_identical_to_its_canonical_spec(framework: str, cases: list[Any]) -> None:
    for _, layers, _ in cases:
        for tensor in resolve_model(layers, framework=framework, seed=9).tensors:
            assert model_bytes(tensor) == spec_bytes(tensor), tensor.name
            assert tensor.tensor.spec.layout == {"keras": "keras", "flax": "jax"}[framework]


@pytest.mark.parametrize("framework,prefix", [("keras", "head"), ("flax", "params/head")])
def test_explicit_names_replace_the_automatic_ones(framework: str, prefix: str) -> None:
    names = [name for name, _ in table(framework, [{**DENSE, "name": "head"}])]
    assert names == [f"{prefix}/kernel", f"{prefix}/bias"]


@pytest.mark.parametrize("framework,expected", [("keras", "dense/kernel"), ("flax", "params/Dense_0/kernel")])
def test_an_explicitly_named_layer_does_not_use_up_an_automatic_name(framework: str, expected: str) -> None:
    # keras: Dense(name="head"), Dense() → "head", "dense"; flax: nn.Dense(name="head"), nn.Dense() → head, Dense_0
    names = [name for name, _ in table(framework, [{**DENSE, "name": "head"}, DENSE])]
    assert names[2] == expected


# --- default initializers ----------------------------------------------------------------------------------------


def law(tensor: ModelTensor) -> Any:
    plan = tensor.tensor.plan
    assert isinstance(plan, Sampled), tensor.name
    return plan.distribution


def keras_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """keras.src.initializers.random_initializers.compute_fans, literally."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_limit(shape: tuple[int, ...]) -> float:
    """keras GlorotUniform: VarianceScaling(1, fan_avg, uniform), limit √(3·scale)."""
    fan_in, fan_out = keras_fans(shape)
    return math.sqrt(3.0 / max(1.0, (fan_in + fan_out) / 2.0))


ALL_KERAS = [layer for _, layers, _ in KERAS for layer in layers]
ALL_FLAX = [layer for _, layers, _ in FLAX for layer in layers]


def test_keras_kernels_are_glorot_uniform_with_keras_fans() -> None:
    kernels = [t for t in resolve_model(ALL_KERAS, framework="keras").tensors if t.name.endswith("/kernel")]
    assert len(kernels) > 20
    for tensor in kernels:
        assert tensor.tensor.spec.method == "xavier_uniform" and tensor.source == "framework default"
        uniform = law(tensor)
        assert isinstance(uniform, Uniform)
        assert uniform.high == pytest.approx(glorot_limit(tensor.shape), rel=1e-14), tensor.name
        assert uniform.low == -uniform.high


@pytest.mark.parametrize("name,fan_in,fan_out", [
    ("multi_head_attention/query/kernel", 2 * 8, 4 * 8),  # [E, H, D]: receptive field E
    ("multi_head_attention/key/kernel", 2 * 8, 4 * 8),
    ("multi_head_attention/attention_output/kernel", 4 * 2, 8 * 2),  # [H, D, E]: receptive field H
    ("multi_head_attention_1/key/kernel", 4 * 5, 2 * 5),  # kdim 5, 4 heads of 2
    ("multi_head_attention_1/value/kernel", 4 * 3, 2 * 3),  # vdim 3
])
def test_keras_attention_kernels_use_keras_3d_fans(name: str, fan_in: int, fan_out: int) -> None:
    tensor = by_name(resolve_model([MHA, MHA_KV], framework="keras"))[name]
    assert tensor.describe()["fan_in"] == fan_in and tensor.describe()["fan_out"] == fan_out
    assert law(tensor).high == pytest.approx(math.sqrt(6.0 / (fan_in + fan_out)), rel=1e-14)


def test_keras_recurrent_kernels_are_orthogonal() -> None:
    tensors = resolve_model([RNN, LSTM, GRU], framework="keras", seed=4).tensors
    recurrent = [t for t in tensors if t.name.endswith("recurrent_kernel")]
    assert len(recurrent) == 3
    for tensor in recurrent:
        assert tensor.tensor.spec.method == "orthogonal" and isinstance(tensor.tensor.plan, Dense)
        w = values(tensor)  # [units, G·units]: orthonormal rows
        assert np.allclose(w @ w.T, np.eye(w.shape[0]), atol=1e-5), tensor.name


def test_keras_biases_and_lstm_unit_forget_bias() -> None:
    tensors = by_name(resolve_model([DENSE, CONV1D, RNN, LSTM, GRU, MHA], framework="keras", seed=2))
    lstm = values(tensors["lstm/lstm_cell/bias"])
    units = LSTM["hidden_size"]
    expected = np.zeros(4 * units)
    expected[units : 2 * units] = 1.0  # gates i, f, c, o: ones on the forget gate only
    assert np.array_equal(lstm, expected)
    for name, tensor in tensors.items():
        if name.endswith("bias") and name != "lstm/lstm_cell/bias":
            assert tensor.tensor.spec.method == "zeros" and not values(tensor).any(), name
    assert values(tensors["gru/gru_cell/bias"]).shape == (2, 15)


def test_keras_embeddings_norms_and_moving_statistics() -> None:
    tensors = by_name(resolve_model([EMBEDDING, LAYER_NORM, RMS_NORM, BATCH_NORM], framework="keras", seed=1))
    embeddings = tensors["embedding/embeddings"]
    uniform = law(embeddings)
    assert isinstance(uniform, Uniform) and (uniform.low, uniform.high) == (-0.05, 0.05)
    x = values(embeddings)
    assert x.min() >= -0.05 and x.max() < 0.05 and x.std() > 0.01
    constants = {"layer_normalization/gamma": 1.0, "layer_normalization/beta": 0.0, "rms_normalization/scale": 1.0,
                 "batch_normalization/gamma": 1.0, "batch_normalization/beta": 0.0,
                 "batch_normalization/moving_mean": 0.0, "batch_normalization/moving_variance": 1.0}
    for name, constant in constants.items():
        assert np.all(values(tensors[name]) == constant), name


def test_flax_kernels_are_lecun_normal_truncated() -> None:
    kernels = [t for t in resolve_model(ALL_FLAX, framework="flax").tensors
               if t.name.endswith("/kernel") and t.tensor.spec.method != "orthogonal"]
    assert len(kernels) > 20
    for tensor in kernels:
        assert tensor.tensor.spec.method == "lecun_normal"
        fan_in = tensor.describe()["fan_in"]
        assert fan_in == math.prod(tensor.tensor.shape[:-1])  # jax fans: everything but the output axis
        truncated = law(tensor)
        sigma = math.sqrt(1.0 / fan_in) / TRUNCATED_NORMAL_STD_2  # jax variance_scaling "truncated_normal"
        assert isinstance(truncated, TruncatedNormal)
        assert truncated.std == pytest.approx(sigma, rel=1e-14) and truncated.mean == 0.0
        assert truncated.low == pytest.approx(-2 * sigma, rel=1e-14) and truncated.high == -truncated.low


def test_flax_lecun_normal_has_variance_one_over_fan_in() -> None:
    tensor = resolve_model([{"type": "linear", "in_features": 200, "out_features": 300}], framework="flax",
                           seed=8).tensors[0]
    x = values(tensor)
    assert x.shape == (200, 300)
    bound = 2.0 * math.sqrt(1.0 / 200) / TRUNCATED_NORMAL_STD_2
    assert np.abs(x).max() <= bound * (1 + 1e-6)
    assert x.var() == pytest.approx(1.0 / 200, rel=0.02)  # 60 000 draws: the standard error is ~0.5 %


@pytest.mark.parametrize("name,matrix,framework_shape", [
    ("query/kernel", (8, 8), (8, 2, 4)),
    ("out/kernel", (8, 8), (2, 4, 8)),
])
def test_flax_attention_kernels_are_the_flattened_matrix_reshaped(name: str, matrix: tuple[int, int],
                                                                   framework_shape: tuple[int, ...]) -> None:
    tensor = by_name(resolve_model([MHA], framework="flax", seed=6))[f"params/MultiHeadDotProductAttention_0/{name}"]
    assert tensor.tensor.shape == matrix and tensor.shape == framework_shape
    assert tensor.describe()["fan_in"] == matrix[0]  # DenseGeneral: the fans of the flattened [in, out] matrix
    sigma = math.sqrt(1.0 / matrix[0]) / TRUNCATED_NORMAL_STD_2
    assert law(tensor).std == pytest.approx(sigma, rel=1e-14)
    flat = tensor.tensor.region()
    assert model_bytes(tensor) == flat.tobytes()
    assert np.array_equal(values(tensor), flat.reshape(framework_shape).astype(np.float64))


def test_flax_attention_key_kernel_with_kdim_has_fan_in_kdim() -> None:
    tensor = by_name(resolve_model([MHA_KV], framework="flax"))["params/MultiHeadDotProductAttention_0/key/kernel"]
    assert tensor.tensor.shape == (5, 8) and tensor.shape == (5, 4, 2)
    assert law(tensor).std == pytest.approx(math.sqrt(1.0 / 5) / TRUNCATED_NORMAL_STD_2, rel=1e-14)


def test_flax_recurrent_kernels_are_orthogonal_and_biases_zero() -> None:
    tensors = resolve_model([LSTM, GRU, RNN], framework="flax", seed=3).tensors
    hidden = [t for t in tensors if t.name.split("/")[-2].startswith("h") and t.name.endswith("kernel")]
    assert len(hidden) == 4 + 3 + 1
    for tensor in hidden:
        assert tensor.tensor.spec.method == "orthogonal"
        w = values(tensor)
        assert np.allclose(w @ w.T, np.eye(5), atol=1e-5) and np.allclose(w.T @ w, np.eye(5), atol=1e-5)
    for tensor in tensors:
        if tensor.name.endswith("bias"):
            assert tensor.tensor.spec.method == "zeros" and not values(tensor).any()


def test_flax_embed_std_is_one_over_sqrt_features() -> None:
    tensor = resolve_model([{"type": "embedding", "num_embeddings": 300, "embedding_dim": 64}], framework="flax",
                           seed=5).tensors[0]
    normal = law(tensor)
    assert isinstance(normal, Normal)
    assert normal.mean == 0.0 and normal.std == pytest.approx(1 / math.sqrt(64), rel=1e-15)
    assert values(tensor).std() == pytest.approx(1 / 8, rel=0.02)


def test_flax_norms_and_batch_statistics() -> None:
    tensors = by_name(resolve_model([LAYER_NORM, RMS_NORM, BATCH_NORM], framework="flax"))
    constants = {"params/LayerNorm_0/scale": 1.0, "params/LayerNorm_0/bias": 0.0, "params/RMSNorm_0/scale": 1.0,
                 "params/BatchNorm_0/scale": 1.0, "params/BatchNorm_0/bias": 0.0,
                 "batch_stats/BatchNorm_0/mean": 0.0, "batch_stats/BatchNorm_0/var": 1.0}
    assert set(tensors) == set(constants)
    for name, constant in constants.items():
        assert np.all(values(tensors[name]) == constant), name


# --- refusals ----------------------------------------------------------------------------------------------------

REFUSALS: list[tuple[Spec, str]] = [
    ({**LSTM, "num_layers": 2}, "num_layers"),
    ({**GRU, "bidirectional": True}, "bidirectional"),
    ({**RNN, "num_layers": 3}, "num_layers"),
    ({**LSTM, "proj_size": 2}, "proj_size"),
    ({**MHA, "add_bias_kv": True}, "add_bias_kv"),
    ({**EMBEDDING, "padding_idx": 0}, "padding_idx"),
    ({**EMBEDDING, "padding_idx": -1}, "padding_idx"),
    ({**CONVT2D, "groups": 2}, "groups"),
    ({**CONVT1D, "groups": 2}, "groups"),
]


@pytest.mark.parametrize("framework", ["keras", "flax"])
@pytest.mark.parametrize("layer,field", REFUSALS)
def test_options_the_framework_lacks_are_refused(framework: str, layer: Spec, field: str) -> None:
    error = spec_error(resolve_model, [DENSE, layer], framework=framework)
    assert error.field == f"layers.1.{field}"
    assert f"framework {framework!r} has no" in error.message
    resolve_model([DENSE, layer], framework="torch")  # torch has them all


@pytest.mark.parametrize("layer", [RNN, LSTM, GRU])
def test_flax_recurrent_cells_need_their_biases(layer: Spec) -> None:
    error = spec_error(resolve_model, [{**layer, "bias": False}], framework="flax")
    assert error.field == "layers.0.bias" and "without biases" in error.message
    names = [t.name for t in resolve_model([{**layer, "bias": False}], framework="keras").tensors]
    assert not any(name.endswith("/bias") for name in names)  # keras: use_bias=False is fine


def test_keras_grouped_convolution_is_accepted() -> None:
    assert table("keras", [CONV2D_GROUPS])[0] == ("conv2d/kernel", (3, 2, 2, 6))
