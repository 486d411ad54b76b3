"""The model machinery: schemes, gains from nonlinearities, override precedence, tensor entries, selection, errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from initserve.core import calculate_gain, resolve
from initserve.core.distributions import Normal, Uniform
from initserve.core.model import PRESETS, Model, ModelTensor, resolve_model
from initserve.core.plans import Sampled

from .conftest import by_name, model_bytes, spec_bytes, spec_error, values

Spec = dict[str, Any]

LINEAR: Spec = {"type": "linear", "in_features": 6, "out_features": 4}
CONV: Spec = {"type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3}
EMBEDDING: Spec = {"type": "embedding", "num_embeddings": 10, "embedding_dim": 4, "padding_idx": 0}
LAYER_NORM: Spec = {"type": "layer_norm", "normalized_shape": 4}
BATCH_NORM: Spec = {"type": "batch_norm1d", "num_features": 4}
LSTM: Spec = {"type": "lstm", "input_size": 4, "hidden_size": 5}
MHA: Spec = {"type": "multihead_attention", "embed_dim": 8, "num_heads": 2, "add_bias_kv": True}
TORCH_MODEL = [LINEAR, CONV, EMBEDDING, LAYER_NORM, BATCH_NORM, LSTM, MHA]


def law(tensor: ModelTensor) -> Any:
    plan = tensor.tensor.plan
    assert isinstance(plan, Sampled), tensor.name
    return plan.distribution


def params(tensor: ModelTensor) -> dict[str, Any]:
    """The canonical (unset parameters omitted) parameters of the tensor's method."""
    result: dict[str, Any] = tensor.tensor.spec.canonical()["params"]
    return result


# --- schemes -----------------------------------------------------------------------------------------------------

# preset → (method, canonical params) of every schemed weight
PRESET_WEIGHTS: dict[str, tuple[str, dict[str, Any]]] = {
    "xavier": ("xavier_uniform", {"gain": 1.0}),
    "he": ("kaiming_normal", {"mode": "fan_in", "negative_slope": 0.0, "nonlinearity": "leaky_relu",
                              "truncated": False}),
    "lecun": ("lecun_normal", {"truncated": True}),
    "orthogonal": ("orthogonal", {"gain": 1.0}),
    "small_normal": ("normal", {"mean": 0.0, "std": 0.01}),
    "gpt2": ("normal", {"mean": 0.0, "std": 0.02}),
}
UNTOUCHED = {"3.weight", "3.bias", "4.weight", "4.bias", "4.running_mean", "4.running_var", "4.num_batches_tracked"}


def test_the_preset_table_is_complete() -> None:
    assert set(PRESETS) == {"framework", *PRESET_WEIGHTS}


@pytest.mark.parametrize("preset", list(PRESET_WEIGHTS))
def test_presets_give_their_method_to_weights_zeros_to_biases_and_leave_norms(preset: str) -> None:
    method, expected = PRESET_WEIGHTS[preset]
    default = by_name(resolve_model(TORCH_MODEL, framework="torch", seed=3))
    model = resolve_model(TORCH_MODEL, framework="torch", scheme=preset, seed=3)
    roles = {t.role for t in model.tensors}
    assert roles == {"weight", "bias", "state"}
    for tensor in model.tensors:
        spec = tensor.tensor.spec
        if tensor.name in UNTOUCHED:  # norm scales and shifts, running statistics
            assert spec.canonical() == default[tensor.name].tensor.spec.canonical(), tensor.name
            assert tensor.source == "framework default"
        elif tensor.role == "bias":
            assert spec.method == "zeros", tensor.name
            assert not values(tensor).any()
        else:
            assert tensor.role == "weight" and tensor.source == "scheme", tensor.name
            assert (spec.method, params(tensor)) == (method, expected), tensor.name
    embedding = by_name(model)["2.weight"]
    assert embedding.tensor.spec.zero_rows == ((0, 1),)  # padding_idx survives any scheme
    assert not values(embedding)[0].any() and values(embedding)[1:].all()


def test_framework_scheme_is_the_framework_default_everywhere() -> None:
    model = resolve_model(TORCH_MODEL, framework="torch")
    assert {t.source for t in model.tensors} == {"framework default"}
    assert by_name(model)["0.weight"].tensor.spec.method == "kaiming_uniform"


def test_he_preset_std_is_sqrt2_over_sqrt_fan_in() -> None:
    tensor = by_name(resolve_model([CONV], scheme="he"))["0.weight"]
    assert law(tensor) == Normal(0.0, math.sqrt(2.0) / math.sqrt(3 * 9))


@pytest.mark.parametrize("preset", list(PRESET_WEIGHTS))
def test_presets_keep_the_keras_lstm_unit_forget_bias(preset: str) -> None:
    tensors = by_name(resolve_model([LSTM, LINEAR], framework="keras", scheme=preset))
    bias = tensors["lstm/lstm_cell/bias"]
    assert bias.source == "framework default" and bias.tensor.spec.method == "ones"
    expected = np.zeros(20)
    expected[5:10] = 1.0
    assert np.array_equal(values(bias), expected)
    assert tensors["dense/bias"].tensor.spec.method == "zeros"
    assert tensors["lstm/lstm_cell/recurrent_kernel"].tensor.spec.method == PRESET_WEIGHTS[preset][0]


RESIDUAL = [{**LINEAR, "name": "attn.c_proj", "residual_projection": True},
            {**LINEAR, "name": "mlp.c_fc"},
            {**LINEAR, "name": "mlp.c_proj", "residual_projection": True},
            {**LINEAR, "name": "h1.attn.c_proj", "residual_projection": True},
            {**LINEAR, "name": "h1.mlp.c_proj", "residual_projection": True},
            {"type": "embedding", "num_embeddings": 12, "embedding_dim": 6, "name": "wte"}]


@pytest.mark.parametrize("n_layer,std", [(None, 0.02 / math.sqrt(4)),  # default: the count of marked layers
                                         (2, 0.02 / math.sqrt(2 * 2)),
                                         (12, 0.02 / math.sqrt(2 * 12)),
                                         (1, 0.02 / math.sqrt(2))])
def test_gpt2_residual_projections(n_layer: int | None, std: float) -> None:
    tensors = by_name(resolve_model(RESIDUAL, scheme="gpt2", n_layer=n_layer))
    for name in ("attn.c_proj", "mlp.c_proj", "h1.attn.c_proj", "h1.mlp.c_proj"):
        assert law(tensors[f"{name}.weight"]) == Normal(0.0, std), name
        assert tensors[f"{name}.bias"].tensor.spec.method == "zeros"
    for name in ("mlp.c_fc.weight", "wte.weight"):
        assert law(tensors[name]) == Normal(0.0, 0.02)
    assert tensors["mlp.c_fc.bias"].tensor.spec.method == "zeros"


def test_gpt2_without_marked_layers_is_plain_normal_002() -> None:
    for n_layer in (None, 6):
        tensors = resolve_model([LINEAR, LINEAR], scheme="gpt2", n_layer=n_layer).tensors
        assert [law(t) for t in tensors if t.role == "weight"] == [Normal(0.0, 0.02)] * 2


def test_residual_projection_mark_is_ignored_by_other_schemes() -> None:
    marked = resolve_model([{**LINEAR, "residual_projection": True}], scheme="small_normal").tensors[0]
    assert law(marked) == Normal(0.0, 0.01)


# --- nonlinearity → gain -----------------------------------------------------------------------------------------


def xavier_bound(gain: float, fan_in: int, fan_out: int) -> float:
    return math.sqrt(3.0) * (gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def test_xavier_with_tanh_has_gain_five_thirds() -> None:
    tensor = resolve_model([{**LINEAR, "nonlinearity": "tanh"}], scheme="xavier").tensors[0]
    assert params(tensor) == {"gain": 1.0, "nonlinearity": "tanh"}
    assert law(tensor) == Uniform(-xavier_bound(5.0 / 3, 6, 4), xavier_bound(5.0 / 3, 6, 4))


@pytest.mark.parametrize("method,nonlinearity,gain", [("xavier_uniform", "tanh", 5.0 / 3),
                                                      ("xavier_normal", "selu", 0.75)])
def test_describe_reports_the_gain_xavier_actually_uses(method: str, nonlinearity: str, gain: float) -> None:
    layer = {**LINEAR, "nonlinearity": nonlinearity, "init": {"weight": {"method": method}}}
    assert resolve_model([layer]).tensors[0].describe()["gain"] == gain


def test_orthogonal_with_relu_has_gain_sqrt2() -> None:
    tensor = resolve_model([{**LINEAR, "nonlinearity": "relu"}], scheme="orthogonal", seed=2).tensors[0]
    assert params(tensor) == {"gain": math.sqrt(2.0)}
    assert tensor.describe()["gain"] == math.sqrt(2.0)
    w = values(tensor)  # [4, 6]: orthogonal rows of norm √2
    assert np.allclose(w @ w.T, 2.0 * np.eye(4), atol=1e-5)


@pytest.mark.parametrize("slope", [0.2, 0.01, 1.0])
def test_he_with_leaky_relu_uses_the_negative_slope(slope: float) -> None:
    layer = {**CONV, "nonlinearity": "leaky_relu", "negative_slope": slope}
    tensor = resolve_model([layer], scheme="he").tensors[0]
    assert params(tensor)["nonlinearity"] == "leaky_relu" and params(tensor)["negative_slope"] == slope
    gain = math.sqrt(2.0 / (1 + slope * slope))
    assert law(tensor) == Normal(0.0, gain / math.sqrt(3 * 9))
    assert tensor.describe()["gain"] == pytest.approx(gain, rel=1e-15)


def test_leaky_relu_default_slope_and_other_activations() -> None:
    tensors = resolve_model([{**LINEAR, "nonlinearity": "leaky_relu"}, {**LINEAR, "nonlinearity": "gelu"},
                             {**LINEAR, "nonlinearity": "selu"}], scheme="orthogonal").tensors
    gains = [params(t)["gain"] for t in tensors if t.role == "weight"]
    assert gains == [calculate_gain("leaky_relu", 0.01), calculate_gain("gelu"), 0.75]


@pytest.mark.parametrize("preset", ["lecun", "small_normal", "gpt2"])
def test_methods_without_a_gain_ignore_the_nonlinearity(preset: str) -> None:
    plain = resolve_model([LINEAR], scheme=preset).tensors[0]
    tanh = resolve_model([{**LINEAR, "nonlinearity": "tanh"}], scheme=preset).tensors[0]
    assert tanh.tensor.spec == plain.tensor.spec


def test_nonlinearity_fills_layer_inits_but_not_framework_defaults() -> None:
    default = resolve_model([{**LINEAR, "nonlinearity": "relu"}]).tensors[0]
    assert params(default) == params(resolve_model([LINEAR]).tensors[0])  # torch's a=√5 stays
    given = resolve_model([{**LINEAR, "nonlinearity": "selu", "init": {"weight": {"method": "xavier_normal"}}}])
    assert params(given.tensors[0])["nonlinearity"] == "selu"
    assert law(given.tensors[0]) == Normal(0.0, 0.75 * math.sqrt(2.0 / (6 + 4)))


@pytest.mark.parametrize("init", [{"method": "orthogonal", "gain": 0.5}, {"method": "xavier_uniform", "gain": 3.0},
                                  {"method": "kaiming_normal", "nonlinearity": "linear"}])
def test_an_init_that_sets_its_own_gain_keeps_it(init: Spec) -> None:
    tensor = resolve_model([{**LINEAR, "nonlinearity": "relu", "init": {"weight": init}}]).tensors[0]
    assert {k: v for k, v in init.items() if k != "method"}.items() <= params(tensor).items()
    assert "relu" not in params(tensor).values()


def test_an_explicit_negative_slope_in_the_init_is_not_overwritten_by_the_layers() -> None:
    layer = {**LINEAR, "nonlinearity": "leaky_relu", "negative_slope": 0.3,
             "init": {"weight": {"method": "kaiming_uniform", "negative_slope": 0.1}}}
    assert params(resolve_model([layer]).tensors[0])["negative_slope"] == 0.1


# --- override precedence -----------------------------------------------------------------------------------------


def test_exact_name_beats_role_beats_scheme_beats_default() -> None:
    lstm = {**LSTM, "init": {"weight": {"method": "normal", "std": 0.1},
                             "weight_hh_l0": {"method": "orthogonal"},
                             "bias_ih_l0": {"method": "constant", "value": 0.5}}}
    tensors = by_name(resolve_model([lstm, LINEAR, LAYER_NORM], scheme="xavier"))
    chosen = {name: (t.tensor.spec.method, params(t), t.source) for name, t in tensors.items()}
    assert chosen == {
        "0.weight_ih_l0": ("normal", {"mean": 0.0, "std": 0.1}, "layer init"),  # role
        "0.weight_hh_l0": ("orthogonal", {"gain": 1.0}, "layer init"),  # exact name beats role
        "0.bias_ih_l0": ("constant", {"value": 0.5}, "layer init"),
        "0.bias_hh_l0": ("zeros", {}, "scheme"),
        "1.weight": ("xavier_uniform", {"gain": 1.0}, "scheme"),
        "1.bias": ("zeros", {}, "scheme"),
        "2.weight": ("ones", {}, "framework default"),
        "2.bias": ("zeros", {}, "framework default"),
    }


@pytest.mark.parametrize("framework,layer,key,name", [
    ("torch", MHA, "out_proj.weight", "0.out_proj.weight"),
    ("torch", BATCH_NORM, "running_var", "0.running_var"),
    ("keras", LSTM, "lstm_cell/recurrent_kernel", "lstm/lstm_cell/recurrent_kernel"),
    ("keras", MHA | {"add_bias_kv": False}, "attention_output/kernel", "multi_head_attention/attention_output/kernel"),
    ("flax", LSTM, "cell/hf/kernel", "params/RNN_0/cell/hf/kernel"),
    ("flax", BATCH_NORM, "var", "batch_stats/BatchNorm_0/var"),
])
def test_init_by_exact_parameter_path(framework: str, layer: Spec, key: str, name: str) -> None:
    init = {key: {"method": "constant", "value": 0.25}, "weight": {"method": "zeros"}}
    tensors = by_name(resolve_model([{**layer, "init": init}], framework=framework, scheme="orthogonal"))
    assert tensors[name].tensor.spec.method == "constant" and tensors[name].source == "layer init"
    assert np.all(values(tensors[name]) == 0.25)
    others = [t for t in tensors.values() if t.name != name and t.role == "weight"]
    assert others and all(t.tensor.spec.method == "zeros" for t in others)


def test_keras_lstm_bias_can_be_overridden_by_role() -> None:
    layer = {**LSTM, "init": {"bias": {"method": "zeros"}}}
    bias = by_name(resolve_model([layer], framework="keras"))["lstm/lstm_cell/bias"]
    assert bias.tensor.spec.method == "zeros" and bias.tensor.spec.zero_rows == ()


def test_torch_padding_row_stays_zero_under_a_layer_init() -> None:
    tensor = resolve_model([{**EMBEDDING, "init": {"weight": {"method": "ones"}}}]).tensors[0]
    x = values(tensor)
    assert not x[0].any() and np.all(x[1:] == 1.0)


def test_explicit_scheme_by_role() -> None:
    weight_only = by_name(resolve_model(TORCH_MODEL, scheme={"weight": {"method": "normal", "std": 0.5}}))
    default = by_name(resolve_model(TORCH_MODEL))
    for name, tensor in weight_only.items():
        if name in UNTOUCHED or tensor.role == "bias":  # no bias rule: the framework's bias
            assert tensor.tensor.spec == default[name].tensor.spec and tensor.source == "framework default", name
        else:
            assert law(tensor) == Normal(0.0, 0.5) and tensor.source == "scheme", name
    both = by_name(resolve_model([LINEAR, LAYER_NORM], scheme={"weight": {"method": "eye"},
                                                               "bias": {"method": "constant", "value": 0.1}}))
    assert np.array_equal(values(both["0.weight"]), np.eye(4, 6))
    assert np.allclose(values(both["0.bias"]), 0.1)
    assert both["1.weight"].tensor.spec.method == "ones" and both["1.bias"].tensor.spec.method == "zeros"


def test_explicit_scheme_gets_the_nonlinearity_gain() -> None:
    tensor = resolve_model([{**LINEAR, "nonlinearity": "tanh"}], scheme={"weight": {"method": "orthogonal"}}).tensors[0]
    assert params(tensor) == {"gain": 5.0 / 3}


# --- tensor entries ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", ["torch", "keras", "flax"])
def test_tensor_entries_are_one_named_tensor_with_their_own_init(framework: str) -> None:
    entry = {"type": "tensor", "name": "pos_embedding", "shape": [16, 8], "init": {"method": "normal", "std": 0.02}}
    model = resolve_model([LINEAR, entry], framework=framework, scheme="xavier", seed=4)
    tensor = model.tensors[-1]
    assert (tensor.name, tensor.shape, tensor.role, tensor.source) == ("pos_embedding", (16, 8), "weight", "layer init")
    assert law(tensor) == Normal(0.0, 0.02)  # the scheme does not apply
    alone = resolve("normal", [16, 8], std=0.02, seed=4, name="pos_embedding", layout=tensor.tensor.spec.layout)
    assert model_bytes(tensor) == alone.region().tobytes() == spec_bytes(tensor)


def test_tensor_entry_takes_the_nonlinearity_gain() -> None:
    entry = {"type": "tensor", "name": "w", "shape": [5, 5], "init": {"method": "orthogonal"}, "nonlinearity": "relu"}
    tensor = resolve_model([entry]).tensors[0]
    assert params(tensor) == {"gain": math.sqrt(2.0)}
    assert np.allclose(values(tensor) @ values(tensor).T, 2.0 * np.eye(5), atol=1e-5)


TENSOR_ERRORS: list[tuple[Spec, str, str]] = [
    ({"type": "tensor", "shape": [2], "init": {"method": "zeros"}}, "layers.0.name", "is required"),
    ({"type": "tensor", "name": "t", "init": {"method": "zeros"}}, "layers.0.shape", "is required"),
    ({"type": "tensor", "name": "t", "shape": [2]}, "layers.0.init", "is required"),
    ({"type": "tensor", "name": "t", "shape": 2, "init": {"method": "zeros"}}, "layers.0.shape", "list"),
    ({"type": "tensor", "name": "t", "shape": [2], "init": "zeros"}, "layers.0.init", '"method"'),
    ({"type": "tensor", "name": "t", "shape": [2], "init": {"method": "zeros"}, "bias": True}, "layers.0.bias",
     "unknown field"),
    ({"type": "tensor", "name": "t", "shape": [2], "init": {"method": "orthogonal"}}, "layers.0.init.shape",
     "dimensions"),
    ({"type": "tensor", "name": "t", "shape": [2, 2], "init": {"method": "normal", "std": -1}}, "layers.0.init.std",
     ">= 0"),
]


@pytest.mark.parametrize("entry,field,message", TENSOR_ERRORS)
def test_tensor_entry_errors(entry: Spec, field: str, message: str) -> None:
    error = spec_error(resolve_model, [entry])
    assert error.field == field and message in error.message


def test_tensor_entry_bad_shape_is_reported_on_its_shape_field() -> None:
    entry = {"type": "tensor", "name": "t", "shape": [3, -1], "init": {"method": "zeros"}}
    assert spec_error(resolve_model, [entry]).field == "layers.0.shape"


@pytest.mark.parametrize("framework", ["torch", "keras", "flax"])
def test_tensor_entry_with_a_null_name_is_refused(framework: str) -> None:
    entry = {"type": "tensor", "name": None, "shape": [2], "init": {"method": "zeros"}}
    assert spec_error(resolve_model, [entry], framework=framework).field == "layers.0.name"


# --- Model ---------------------------------------------------------------------------------------------------------


def test_select_keeps_model_order_and_refuses_unknown_names() -> None:
    model = resolve_model(TORCH_MODEL)
    chosen = model.select(["6.in_proj_weight", "0.bias", "4.num_batches_tracked"])
    assert isinstance(chosen, Model) and chosen.framework == "torch"
    assert [t.name for t in chosen.tensors] == ["0.bias", "4.num_batches_tracked", "6.in_proj_weight"]
    assert chosen.numel == 4 + 1 + 24 * 8
    assert model.numel == sum(t.numel for t in model.tensors)
    assert model.select([]).tensors == ()
    error = spec_error(model.select, ["0.bias", "0.kernel"])
    assert error.field == "tensors" and error.value == "0.kernel" and "0.weight" in error.message


def test_describe_reports_spec_fans_gain_and_source() -> None:
    tensors = by_name(resolve_model([CONV]))
    weight = tensors["0.weight"].describe()
    assert weight["spec"] == tensors["0.weight"].tensor.spec.canonical()
    assert (weight["fan_in"], weight["fan_out"]) == (27, 36)
    assert weight["gain"] == calculate_gain("leaky_relu", math.sqrt(5.0)) and weight["source"] == "framework default"
    bias = tensors["0.bias"].describe()
    assert (bias["fan_in"], bias["fan_out"], bias["gain"]) == (None, None, None)


def test_model_level_seed_and_dtype_reach_every_tensor() -> None:
    model = resolve_model([LINEAR, BATCH_NORM], seed=2**64 - 1, dtype="bfloat16")
    assert {t.tensor.spec.seed for t in model.tensors} == {2**64 - 1}
    assert [t.dtype for t in model.tensors] == ["bfloat16"] * 6 + ["int64"]
    assert all(model_bytes(t) == spec_bytes(t) for t in model.tensors)


# --- errors ------------------------------------------------------------------------------------------------------

# (layers, keyword arguments, error field, a fragment of the message)
ERRORS: list[tuple[Any, dict[str, Any], str, str]] = [
    ([], {}, "layers", "non-empty list"),
    ("linear", {}, "layers", "non-empty list"),
    (["linear"], {}, "layers.0", "'type'"),
    ([{"in_features": 3}], {}, "layers.0.type", "is required"),
    ([LINEAR, {"type": "linear", "in_features": 3}], {}, "layers.1.out_features", "is required"),
    ([{"type": "conv2d", "in_channels": 3, "out_channels": 4}], {}, "layers.0.kernel_size", "is required"),
    ([{**LINEAR, "in_features": "6"}], {}, "layers.0.in_features", "number"),
    ([{**LINEAR, "out_features": -1}], {}, "layers.0.out_features", ">= 0"),
    ([{**LINEAR, "kernel_size": 3}], {}, "layers.0.kernel_size", "unknown parameter"),
    ([{"type": "mha", "embed_dim": 10, "num_heads": 3}], {}, "layers.0.num_heads", "must divide embed_dim (10)"),
    ([{**CONV, "out_channels": 6, "groups": 4}], {}, "layers.0.groups", "must divide in_channels"),
    ([{**CONV, "in_channels": 4, "groups": 4, "out_channels": 6}], {}, "layers.0.groups", "must divide out_channels"),
    ([{**CONV, "kernel_size": [3, 3, 3]}], {}, "layers.0.kernel_size", "2 integers"),
    ([{"type": "conv1d", "in_channels": 1, "out_channels": 1, "kernel_size": [2, 2]}], {}, "layers.0.kernel_size",
     "1 integers"),
    ([{**LSTM, "proj_size": 5}], {}, "layers.0.proj_size", "smaller than hidden_size (5)"),
    ([{**LSTM, "proj_size": 9}], {}, "layers.0.proj_size", "smaller than hidden_size"),
    ([{**EMBEDDING, "padding_idx": 10}], {}, "layers.0.padding_idx", "within num_embeddings (10)"),
    ([{**EMBEDDING, "padding_idx": -11}], {}, "layers.0.padding_idx", "within num_embeddings"),
    ([{**LINEAR, "name": "x"}, {**CONV, "name": "x"}], {}, "layers.1.name", "already used by layers.0"),
    ([LINEAR, {"type": "tensor", "name": "0.weight", "shape": [1], "init": {"method": "zeros"}}], {}, "layers.1.name",
     "'0.weight'"),
    ([{**LINEAR, "name": ""}], {}, "layers.0.name", "non-empty string"),
    ([{**LINEAR, "name": 3}], {}, "layers.0.name", "non-empty string"),
    ([{**LINEAR, "init": {"gamma": {"method": "ones"}}}], {}, "layers.0.init.gamma", "no such parameter"),
    ([{**LINEAR, "init": {"running_mean": {"method": "ones"}}}], {}, "layers.0.init.running_mean", "no such parameter"),
    ([{**LINEAR, "init": "xavier"}], {}, "layers.0.init", "must map"),
    ([{**LINEAR, "init": {"weight": {"std": 1.0}}}], {}, "layers.0.init.weight", '"method"'),
    ([{**LINEAR, "init": {"weight": {"method": "normal", "std": -1}}}], {}, "layers.0.init.weight.std", ">= 0"),
    ([{**LINEAR, "init": {"weight": {"method": "nope"}}}], {}, "layers.0.init.weight.method", "unknown method"),
    ([{**LINEAR, "init": {"weight": {"method": "normal", "scale": 2}}}], {}, "layers.0.init.weight.scale",
     "unknown parameter"),
    ([LINEAR, {**LSTM, "init": {"weight_hh_l0": {"method": "orthogonal", "gain": -1.0}}}], {},
     "layers.1.init.weight_hh_l0.gain", ">= 0"),
    ([{**LINEAR, "init": {"bias": {"method": "orthogonal"}}}], {}, "layers.0.init.bias.shape", "2 to 8 dimensions"),
    ([{**LINEAR, "nonlinearity": "sigmoidal"}], {}, "layers.0.nonlinearity", "unknown nonlinearity"),
    ([{**LINEAR, "residual_projection": "yes"}], {}, "layers.0.residual_projection", "true or false"),
    ([LINEAR], {"scheme": "kaiming"}, "scheme", "unknown scheme"),
    ([LINEAR], {"scheme": {}}, "scheme", "preset name"),
    ([LINEAR], {"scheme": {"kernel": {"method": "zeros"}}}, "scheme", "preset name"),
    ([LINEAR], {"scheme": {"weight": "normal"}}, "scheme.weight", '"method"'),
    ([LINEAR], {"scheme": {"weight": {"method": "normal", "std": -2.0}}}, "scheme.weight.std", ">= 0"),
    ([LINEAR], {"scheme": {"bias": {"method": "orthogonal"}}}, "scheme.bias.shape", "dimensions"),
    ([LINEAR], {"n_layer": 12}, "n_layer", "only used by scheme 'gpt2'"),
    ([LINEAR], {"scheme": "xavier", "n_layer": 12}, "n_layer", "only used by scheme 'gpt2'"),
    ([LINEAR], {"scheme": "gpt2", "n_layer": 0}, "n_layer", "positive integer"),
    ([LINEAR], {"scheme": "gpt2", "n_layer": 2.5}, "n_layer", "positive integer"),
    ([LINEAR], {"scheme": "gpt2", "n_layer": True}, "n_layer", "positive integer"),
    ([LINEAR], {"dtype": "int64"}, "dtype", "floating-point"),
    ([LINEAR], {"framework": "jax"}, "framework", "torch, keras, flax"),
]


@pytest.mark.parametrize("layers,kwargs,field,message", ERRORS)
def test_errors_name_the_field_and_say_why(layers: Any, kwargs: dict[str, Any], field: str, message: str) -> None:
    error = spec_error(resolve_model, layers, **kwargs)
    assert error.field == field, error
    assert message in error.message, error
    assert str(error).startswith(f"{field}=")


def test_unknown_layer_type_is_reported_on_its_layer() -> None:
    error = spec_error(resolve_model, [LINEAR, {"type": "conv4d"}])
    assert "unknown layer type" in error.message and "conv2d" in error.message
    assert error.field == "layers.1.type"


@pytest.mark.parametrize("seed", [-1, 2**64, "7"])
def test_a_bad_model_seed_is_reported_on_seed(seed: Any) -> None:
    assert spec_error(resolve_model, [LINEAR], seed=seed).field == "seed"


@pytest.mark.parametrize("dtype", ["float8", "int32"])
def test_an_unknown_model_dtype_is_reported_on_dtype(dtype: str) -> None:
    assert spec_error(resolve_model, [LINEAR], dtype=dtype).field == "dtype"


@pytest.mark.parametrize("slope", ["0.2", [0.2]])
def test_a_non_numeric_negative_slope_is_a_spec_error(slope: Any) -> None:
    layer = {**LINEAR, "nonlinearity": "leaky_relu", "negative_slope": slope}
    assert spec_error(resolve_model, [layer], scheme="orthogonal").field == "layers.0.negative_slope"
