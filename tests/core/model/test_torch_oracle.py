"""torch is the oracle: every layer type against the real module's state_dict and what its constructor draws.

For each layer the test builds the torch module from the same fields (our field names are torch's argument
names), then checks that ``resolve_model(..., framework="torch")`` lists the same tensors, in the same order,
with the same shapes and dtypes, and that the framework defaults are torch's laws to the last bit: the
constructor's ``uniform_``/``normal_``/``fill_``/``zero_`` calls are recorded (by data pointer, mapped back to
state_dict names) and compared with our plans.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from initserve.core.distributions import Normal, Uniform
from initserve.core.model import ModelTensor, resolve_model
from initserve.core.plans import Sampled

from .conftest import by_name, model_bytes, spec_bytes, values

torch = pytest.importorskip("torch")

Spec = dict[str, Any]

# (id, layer spec): every layer type, with the variants that change names, shapes or laws.
CASES: list[tuple[str, Spec]] = [
    ("linear", {"type": "linear", "in_features": 5, "out_features": 3}),
    ("linear-no-bias", {"type": "linear", "in_features": 7, "out_features": 4, "bias": False}),
    ("dense-alias", {"type": "dense", "in_features": 2, "out_features": 6}),
    ("linear-zero-in", {"type": "linear", "in_features": 0, "out_features": 3}),
    ("conv1d", {"type": "conv1d", "in_channels": 4, "out_channels": 6, "kernel_size": 3}),
    ("conv1d-groups", {"type": "conv1d", "in_channels": 6, "out_channels": 9, "kernel_size": [5], "groups": 3}),
    ("conv2d", {"type": "conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": [3, 2]}),
    ("conv2d-groups", {"type": "conv2d", "in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 2}),
    ("conv2d-depthwise", {"type": "conv2d", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "groups": 4}),
    ("conv3d-no-bias", {"type": "conv3d", "in_channels": 2, "out_channels": 4, "kernel_size": [2, 3, 1],
                        "bias": False}),
    ("conv3d-groups", {"type": "conv3d", "in_channels": 4, "out_channels": 2, "kernel_size": 2, "groups": 2}),
    ("conv_transpose1d", {"type": "conv_transpose1d", "in_channels": 4, "out_channels": 6, "kernel_size": 3}),
    ("conv_transpose1d-groups", {"type": "conv_transpose1d", "in_channels": 6, "out_channels": 4, "kernel_size": 2,
                                 "groups": 2}),
    ("conv_transpose2d", {"type": "conv_transpose2d", "in_channels": 3, "out_channels": 5, "kernel_size": [2, 3]}),
    ("conv_transpose2d-groups", {"type": "conv_transpose2d", "in_channels": 4, "out_channels": 6, "kernel_size": 3,
                                 "groups": 2}),
    ("conv_transpose3d-no-bias", {"type": "conv_transpose3d", "in_channels": 2, "out_channels": 3, "kernel_size": 2,
                                  "bias": False}),
    ("conv_transpose3d-groups", {"type": "conv_transpose3d", "in_channels": 6, "out_channels": 9,
                                 "kernel_size": [1, 2, 2], "groups": 3}),
    ("embedding", {"type": "embedding", "num_embeddings": 10, "embedding_dim": 4}),
    ("embedding-padding", {"type": "embedding", "num_embeddings": 10, "embedding_dim": 4, "padding_idx": 2}),
    ("embedding-padding-negative", {"type": "embedding", "num_embeddings": 6, "embedding_dim": 3, "padding_idx": -1}),
    ("embedding-padding-first", {"type": "embedding", "num_embeddings": 6, "embedding_dim": 3, "padding_idx": -6}),
    ("layer_norm", {"type": "layer_norm", "normalized_shape": 8}),
    ("layer_norm-multi", {"type": "layer_norm", "normalized_shape": [3, 4]}),
    ("layer_norm-no-bias", {"type": "layer_norm", "normalized_shape": [5], "bias": False}),
    ("layer_norm-no-affine", {"type": "layer_norm", "normalized_shape": 5, "elementwise_affine": False}),
    ("rms_norm", {"type": "rms_norm", "normalized_shape": [2, 3]}),
    ("rms_norm-no-affine", {"type": "rms_norm", "normalized_shape": 4, "elementwise_affine": False}),
    ("batch_norm1d", {"type": "batch_norm1d", "num_features": 5}),
    ("batch_norm2d-no-affine", {"type": "batch_norm2d", "num_features": 4, "affine": False}),
    ("batch_norm3d-no-stats", {"type": "batch_norm3d", "num_features": 3, "track_running_stats": False}),
    ("batch_norm2d-bare", {"type": "batch_norm2d", "num_features": 3, "affine": False,
                           "track_running_stats": False}),
    ("rnn", {"type": "rnn", "input_size": 3, "hidden_size": 5}),
    ("rnn-2-bidirectional", {"type": "rnn", "input_size": 3, "hidden_size": 4, "num_layers": 2,
                             "bidirectional": True}),
    ("rnn-no-bias", {"type": "rnn", "input_size": 2, "hidden_size": 3, "bias": False}),
    ("lstm", {"type": "lstm", "input_size": 3, "hidden_size": 5}),
    ("lstm-2-layers", {"type": "lstm", "input_size": 3, "hidden_size": 4, "num_layers": 2}),
    ("lstm-bidirectional-no-bias", {"type": "lstm", "input_size": 2, "hidden_size": 3, "bidirectional": True,
                                    "bias": False}),
    ("lstm-proj", {"type": "lstm", "input_size": 3, "hidden_size": 6, "proj_size": 2}),
    ("lstm-proj-2-bidirectional", {"type": "lstm", "input_size": 3, "hidden_size": 5, "proj_size": 3,
                                   "num_layers": 2, "bidirectional": True}),
    ("gru", {"type": "gru", "input_size": 3, "hidden_size": 5}),
    ("gru-2-bidirectional", {"type": "gru", "input_size": 4, "hidden_size": 2, "num_layers": 2,
                             "bidirectional": True}),
    ("gru-no-bias", {"type": "gru", "input_size": 3, "hidden_size": 4, "num_layers": 2, "bias": False}),
    ("mha", {"type": "multihead_attention", "embed_dim": 8, "num_heads": 2}),
    ("mha-alias-same-kdim", {"type": "mha", "embed_dim": 6, "num_heads": 3, "kdim": 6, "vdim": 6}),
    ("mha-kdim-vdim", {"type": "multihead_attention", "embed_dim": 8, "num_heads": 4, "kdim": 5, "vdim": 3}),
    ("mha-vdim-only", {"type": "multihead_attention", "embed_dim": 4, "num_heads": 1, "vdim": 7}),
    ("mha-no-bias", {"type": "multihead_attention", "embed_dim": 6, "num_heads": 2, "bias": False}),
    ("mha-bias-kv", {"type": "multihead_attention", "embed_dim": 8, "num_heads": 2, "add_bias_kv": True}),
    ("mha-bias-kv-no-bias-kdim", {"type": "multihead_attention", "embed_dim": 4, "num_heads": 2, "add_bias_kv": True,
                                  "bias": False, "kdim": 3}),
]
IDS = [case_id for case_id, _ in CASES]
SPECS = [spec for _, spec in CASES]

_TORCH_CLASSES = {
    "linear": "Linear", "dense": "Linear", "embedding": "Embedding", "layer_norm": "LayerNorm",
    "rms_norm": "RMSNorm", "rnn": "RNN", "lstm": "LSTM", "gru": "GRU", "multihead_attention": "MultiheadAttention",
    "mha": "MultiheadAttention",
    **{f"conv{d}d": f"Conv{d}d" for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": f"ConvTranspose{d}d" for d in (1, 2, 3)},
    **{f"batch_norm{d}d": f"BatchNorm{d}d" for d in (1, 2, 3)},
}
_TORCH_DTYPES = {"float32": "float32", "float64": "float64", "float16": "float16", "bfloat16": "bfloat16",
                 "int64": "int64"}


def torch_module(spec: Spec) -> Any:
    """The torch module of a layer spec: our field names are torch's argument names."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k not in ("type", "name")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Initializing zero-element tensors is a no-op"
        return getattr(torch.nn, _TORCH_CLASSES[spec["type"]])(**kwargs)


def torch_dtype(name: str) -> Any:
    return getattr(torch, _TORCH_DTYPES[name])


# --- names, shapes, dtypes ---------------------------------------------------------------------------------------


def state_dict_table(module: Any) -> list[tuple[str, tuple[int, ...], Any]]:
    return [(name, tuple(t.shape), t.dtype) for name, t in module.state_dict().items()]


def model_table(tensors: tuple[ModelTensor, ...]) -> list[tuple[str, tuple[int, ...], Any]]:
    return [(t.name, t.shape, torch_dtype(t.dtype)) for t in tensors]


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_names_shapes_and_dtypes_equal_the_state_dict(spec: Spec) -> None:
    expected = state_dict_table(torch.nn.Sequential(torch_module(spec)))
    model = resolve_model([spec], framework="torch")
    assert model_table(model.tensors) == expected
    for t in model.tensors:  # the tensor as generated has the framework shape (no reshape in torch)
        assert t.tensor.shape == t.shape and t.layer == "0"


THREE = [SPECS[IDS.index("conv2d-groups")], SPECS[IDS.index("batch_norm2d-no-affine")], SPECS[IDS.index("lstm-proj")]]


def test_three_layers_are_named_by_their_sequential_index() -> None:
    expected = state_dict_table(torch.nn.Sequential(*[torch_module(s) for s in THREE]))
    model = resolve_model(THREE, framework="torch")
    assert model_table(model.tensors) == expected
    assert [name.split(".")[0] for name, _, _ in expected] == [t.layer for t in model.tensors]
    assert {t.layer for t in model.tensors} == {"0", "1", "2"}


def test_custom_names_are_the_sequential_keys() -> None:
    names = ["stem", "norm", "encoder.rnn"]  # a dotted name nests, exactly like a state_dict prefix
    flat = OrderedDict([("stem", torch_module(THREE[0])), ("norm", torch_module(THREE[1]))])
    expected = state_dict_table(torch.nn.Sequential(flat))
    encoder = torch.nn.Module()
    encoder.rnn = torch_module(THREE[2])
    expected += [(f"encoder.{n}", s, d) for n, s, d in state_dict_table(encoder)]
    model = resolve_model([{**s, "name": n} for s, n in zip(THREE, names)], framework="torch")
    assert model_table(model.tensors) == expected


def test_a_mix_of_named_and_unnamed_layers_keeps_the_index_of_the_unnamed() -> None:
    layers = [{**THREE[0], "name": "stem"}, THREE[1], THREE[2]]
    names = [t.name for t in resolve_model(layers, framework="torch").tensors]
    assert names[0] == "stem.weight" and "1.running_mean" in names and "2.weight_hr_l0" in names


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_model_dtype_equals_module_to_dtype(dtype: str) -> None:
    layers = [SPECS[IDS.index("batch_norm1d")], SPECS[IDS.index("linear")], SPECS[IDS.index("mha-bias-kv")]]
    module = torch.nn.Sequential(*[torch_module(s) for s in layers]).to(torch_dtype(dtype))
    model = resolve_model(layers, framework="torch", dtype=dtype)
    assert model_table(model.tensors) == state_dict_table(module)
    assert by_name(model)["0.num_batches_tracked"].dtype == "int64"  # a counter stays int64
    assert by_name(model)["0.num_batches_tracked"].shape == ()


# --- what torch's constructor draws ------------------------------------------------------------------------------

_OPS = ("uniform_", "normal_", "fill_", "zero_")


@dataclass(frozen=True)
class Draw:
    """One in-place fill torch made while constructing the module."""

    op: str
    pointer: int
    numel: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def record_construction(build: Callable[[], Any]) -> tuple[Any, list[Draw]]:
    """Build the module with every in-place fill recorded (pointer, op, arguments), then the originals back."""
    draws: list[Draw] = []

    def recorder(op: str, original: Any) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            draws.append(Draw(op, self.data_ptr(), self.numel(), args, kwargs))
            return original(self, *args, **kwargs)

        return wrapper

    with pytest.MonkeyPatch.context() as patch:
        for op in _OPS:
            patch.setattr(torch.Tensor, op, recorder(op, getattr(torch.Tensor, op)))
        torch.manual_seed(1234)
        module = build()
    return module, draws


@dataclass(frozen=True)
class Expected:
    """torch's final law for one tensor: the last full fill, and the rows zeroed after it."""

    op: str
    args: tuple[float, ...]
    zero_rows: tuple[tuple[int, int], ...]


def _arguments(draw: Draw) -> tuple[float, ...]:
    names: tuple[tuple[str, float], ...] = {"uniform_": (("from", 0.0), ("to", 1.0)),
                                            "normal_": (("mean", 0.0), ("std", 1.0)),
                                            "fill_": (("value", math.nan),), "zero_": ()}[draw.op]
    given = list(draw.args)
    result = []
    for position, (name, default) in enumerate(names):
        value = given[position] if position < len(given) else draw.kwargs.get(name, default)
        result.append(float(value))
    return tuple(result)


def torch_laws(module: Any, draws: list[Draw]) -> dict[str, Expected]:
    """For each non-empty state_dict tensor: torch's final fill (later partial zero fills become zero rows)."""
    laws: dict[str, Expected] = {}
    for name, tensor in module.state_dict(keep_vars=True).items():
        if not tensor.numel():
            continue
        base, size = tensor.data_ptr(), tensor.element_size()
        mine = [d for d in draws if d.numel and base <= d.pointer < base + tensor.numel() * size]
        full = [i for i, d in enumerate(mine) if d.pointer == base and d.numel == tensor.numel()]
        assert full, f"torch never filled {name} as a whole: {mine}"
        last = mine[full[-1]]
        rows: list[tuple[int, int]] = []
        row = tensor.numel() // tensor.shape[0] if tensor.dim() else 1
        for partial in mine[full[-1] + 1 :]:
            assert partial.op in ("fill_", "zero_") and not any(_arguments(partial)), partial
            offset = (partial.pointer - base) // size
            assert offset % row == 0 and partial.numel % row == 0
            rows.append((offset // row, (offset + partial.numel) // row))
        laws[name] = Expected(last.op, _arguments(last), tuple(sorted(rows)))
    return laws


def assert_same_law(tensor: ModelTensor, expected: Expected) -> None:
    spec, plan = tensor.tensor.spec, tensor.tensor.plan
    where = f"{tensor.name}: torch {expected}, ours {spec.canonical()}"
    if expected.op == "uniform_":
        low, high = expected.args
        if low == high:  # torch's U(-0, 0) (a zero fan_in): all zeros
            assert low == 0.0 and spec.method == "zeros", where
            return
        assert isinstance(plan, Sampled) and isinstance(plan.distribution, Uniform), where
        assert (plan.distribution.low, plan.distribution.high) == (low, high), where  # exact, not approx
    elif expected.op == "normal_":
        assert isinstance(plan, Sampled) and isinstance(plan.distribution, Normal), where
        assert (plan.distribution.mean, plan.distribution.std) == expected.args, where
    else:
        value = expected.args[0] if expected.op == "fill_" else 0.0
        method = {0.0: "zeros", 1.0: "ones"}.get(value, "constant")
        assert spec.method == method, where
        if method == "constant":
            assert spec.params["value"] == value, where
    assert spec.zero_rows == expected.zero_rows, where


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_framework_defaults_are_exactly_what_torch_draws(spec: Spec) -> None:
    module, draws = record_construction(lambda: torch.nn.Sequential(torch_module(spec)))
    laws = torch_laws(module, draws)
    tensors = by_name(resolve_model([spec], framework="torch"))
    assert set(laws) == {name for name, t in tensors.items() if t.numel}
    for name, expected in laws.items():
        assert tensors[name].source == "framework default"
        assert_same_law(tensors[name], expected)


def test_the_recorder_sees_known_torch_laws() -> None:
    """The recording itself: nn.Linear(4, 3) is U(±1/√4·…) on the weight and U(±1/2) on the bias."""
    module, draws = record_construction(lambda: torch.nn.Sequential(torch.nn.Linear(4, 3)))
    laws = torch_laws(module, draws)
    bound = math.sqrt(3.0) * (math.sqrt(2.0 / (1 + math.sqrt(5.0) ** 2)) / math.sqrt(4))
    assert laws["0.weight"] == Expected("uniform_", (-bound, bound), ())
    assert laws["0.bias"] == Expected("uniform_", (-0.5, 0.5), ())
    assert [d.op for d in draws] == ["uniform_", "uniform_"]


# A few laws written out, so the oracle test cannot pass by both sides agreeing on nonsense.
KNOWN_BOUNDS = [
    ("linear", "0.weight", 1 / math.sqrt(5)),
    ("linear", "0.bias", 1 / math.sqrt(5)),
    ("conv2d-groups", "0.bias", 1 / math.sqrt(2 * 9)),  # fan_in from the weight: in/groups · k
    ("conv_transpose2d-groups", "0.bias", 1 / math.sqrt(3 * 9)),  # transposed: out/groups · k
    ("lstm", "0.weight_hh_l0", 1 / math.sqrt(5)),
    ("lstm-proj", "0.weight_hr_l0", 1 / math.sqrt(6)),
    ("gru-2-bidirectional", "0.bias_hh_l1_reverse", 1 / math.sqrt(2)),
    ("mha", "0.in_proj_weight", math.sqrt(6 / (8 + 24))),  # xavier_uniform of [3E, E]
    ("mha-kdim-vdim", "0.k_proj_weight", math.sqrt(6 / (5 + 8))),
]


@pytest.mark.parametrize("case,name,bound", KNOWN_BOUNDS)
def test_known_uniform_bounds(case: str, name: str, bound: float) -> None:
    tensor = by_name(resolve_model([SPECS[IDS.index(case)]], framework="torch"))[name]
    assert isinstance(tensor.tensor.plan, Sampled)
    law = tensor.tensor.plan.distribution
    assert isinstance(law, Uniform)
    assert law.high == pytest.approx(bound, rel=1e-15) and law.low == -law.high


# --- the values --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_generated_values_respect_the_law(spec: Spec) -> None:
    for tensor in resolve_model([spec], framework="torch", seed=7).tensors:
        x = values(tensor)
        plan = tensor.tensor.plan
        kept = np.ones(x.shape[0] if x.ndim else 1, bool)
        for start, stop in tensor.tensor.spec.zero_rows:
            kept[start:stop] = False
            assert not x[start:stop].any(), tensor.name
        x = x[kept] if x.ndim else x
        if isinstance(plan, Sampled) and isinstance(plan.distribution, Uniform):
            assert np.all((x >= plan.distribution.low) & (x <= plan.distribution.high)), tensor.name
            if x.size > 1:
                assert len(np.unique(x)) > 1
        elif isinstance(plan, Sampled):
            assert np.all(np.isfinite(x)) and (x.size < 2 or x.std() > 0), tensor.name
        else:
            constant = {"zeros": 0.0, "ones": 1.0}[tensor.tensor.spec.method]
            assert np.all(x == constant), tensor.name


@pytest.mark.parametrize("padding_idx,row", [(2, 2), (-1, 9), (0, 0), (-10, 0)])
def test_embedding_padding_row_is_exactly_zero_and_no_other_row_is(padding_idx: int, row: int) -> None:
    spec = {"type": "embedding", "num_embeddings": 10, "embedding_dim": 6, "padding_idx": padding_idx}
    tensor = resolve_model([spec], framework="torch", seed=3).tensors[0]
    assert tensor.tensor.spec.zero_rows == ((row, row + 1),)
    x = values(tensor)
    assert np.all(x[row] == 0.0)
    others = np.delete(x, row, axis=0)
    assert np.all(others != 0.0)
    # the other rows are the unpadded table's rows: the zeroing touches nothing else
    plain = values(resolve_model([{**spec, "padding_idx": None}], framework="torch", seed=3).tensors[0])
    assert np.array_equal(others, np.delete(plain, row, axis=0))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_each_tensor_is_byte_identical_to_its_canonical_spec(spec: Spec) -> None:
    for tensor in resolve_model([spec], framework="torch", seed=11).tensors:
        assert model_bytes(tensor) == spec_bytes(tensor), tensor.name
        assert len(model_bytes(tensor)) == tensor.numel * np.dtype(tensor.dtype).itemsize


def test_other_layers_do_not_change_a_tensors_bytes() -> None:
    encoder = {**SPECS[IDS.index("lstm-proj")], "name": "encoder"}
    attention = {**SPECS[IDS.index("mha-bias-kv")], "name": "attention"}
    head = {**SPECS[IDS.index("linear")], "name": "head"}
    small = resolve_model([encoder, head], framework="torch", seed=5)
    large = resolve_model([SPECS[IDS.index("conv2d")], attention, encoder, SPECS[IDS.index("embedding")], head],
                          framework="torch", seed=5)
    kept = by_name(large)
    for tensor in small.tensors:
        assert model_bytes(kept[tensor.name]) == model_bytes(tensor), tensor.name
    # and the seed does matter
    reseeded = by_name(resolve_model([encoder, head], framework="torch", seed=6))
    assert model_bytes(reseeded["head.weight"]) != model_bytes(by_name(small)["head.weight"])
