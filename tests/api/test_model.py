"""``POST /v1/model``: every format carries the same tensors, the manifest reproduces each of them,
tensors are keyed by (seed, full name), schemes have the variance they promise, and bad requests are
problem+json answers naming the field (413 before any work for the limits)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
import zipfile
from io import BytesIO
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors

from initserve.api import Settings, create_app
from initserve.core import ALGORITHM_VERSION

from .cases import SMALL, TestClient
from .model_cases import (
    ANY,
    MLP_SIZES,
    assert_model_problem,
    bf16_bits,
    header_of,
    linear,
    load_npz,
    mlp,
    post_model,
    read_tensors,
    slices_of,
)

BATCH_NORM = {"type": "batch_norm1d", "num_features": 32}
# A torch model touching the special cases: a gain from the activation, an int64 buffer, a named layer,
# zero_rows (padding_idx).
MODEL: dict[str, Any] = {
    "layers": [
        linear(8, 32, nonlinearity="tanh"),
        BATCH_NORM,
        linear(32, 12, name="head"),
        {"type": "embedding", "num_embeddings": 12, "embedding_dim": 8, "padding_idx": 0},
    ],
    "scheme": "he",
    "seed": 3,
}
SHAPES: dict[str, tuple[int, ...]] = {
    "0.weight": (32, 8),
    "0.bias": (32,),
    "1.weight": (32,),
    "1.bias": (32,),
    "1.running_mean": (32,),
    "1.running_var": (32,),
    "1.num_batches_tracked": (),
    "head.weight": (12, 32),
    "head.bias": (12,),
    "3.weight": (12, 8),
}
NAMES = list(SHAPES)
assert sum(math.prod(shape) for shape in SHAPES.values()) <= SMALL.max_json_elements  # every format fits
RANDOM = ["0.weight", "head.weight", "3.weight"]  # the tensors drawn from a generator (the rest are constants)


def answer(client: TestClient, body: Any, **params: str) -> Any:
    response = post_model(client, body, **params)
    assert response.status_code == 200, response.text
    return response


# ---------------------------------------------------------------------------------------------- formats


def test_safetensors_is_the_default_answer(client):
    response = answer(client, MODEL)
    assert response.headers["content-type"] == "application/octet-stream"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["x-initserve-algorithm-version"] == ALGORITHM_VERSION
    assert response.content == answer(client, MODEL, format="safetensors").content

    header, _ = header_of(response.content)
    assert [name for name in header if name != "__metadata__"] == NAMES  # model order, not sorted
    metadata = header["__metadata__"]
    assert metadata["initserve.algorithm_version"] == ALGORITHM_VERSION
    assert json.loads(metadata["initserve.model"]) == MODEL
    assert "initserve.checkpoint_copied" not in metadata

    tensors = load_safetensors(response.content)
    assert {name: array.shape for name, array in tensors.items()} == SHAPES
    for name, array in read_tensors(response.content).items():
        np.testing.assert_array_equal(tensors[name], array)
        assert tensors[name].dtype == (np.int64 if name.endswith("num_batches_tracked") else np.float32)
    np.testing.assert_array_equal(tensors["3.weight"][0], 0)  # padding_idx row
    assert np.all(tensors["3.weight"][1:] != 0)


def test_npz_keys_are_the_tensor_names(client):
    response = answer(client, MODEL, format="npz")
    assert response.headers["content-type"] == "application/zip"
    assert int(response.headers["content-length"]) == len(response.content)
    with zipfile.ZipFile(BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [f"{name}.npy" for name in NAMES]
    arrays = load_npz(response.content)
    assert list(arrays) == NAMES
    reference = load_safetensors(answer(client, MODEL).content)
    for name, array in arrays.items():
        assert array.dtype == reference[name].dtype and array.shape == SHAPES[name]
        np.testing.assert_array_equal(array, reference[name])


def test_json_values_equal_the_safetensors_ones(client):
    response = answer(client, MODEL, format="json")
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["algorithm_version", "framework", "tensors"]
    assert body["algorithm_version"] == ALGORITHM_VERSION and body["framework"] == "torch"
    reference = load_safetensors(answer(client, MODEL).content)
    assert [entry["name"] for entry in body["tensors"]] == NAMES
    for entry in body["tensors"]:
        want = reference[entry["name"]]
        assert set(entry) == {"name", "shape", "dtype", "data"}
        assert entry["shape"] == list(want.shape) and entry["dtype"] == str(want.dtype)
        got = np.asarray(entry["data"], dtype=np.float64).astype(want.dtype).reshape(want.shape)
        np.testing.assert_array_equal(got, want)
    counter = body["tensors"][NAMES.index("1.num_batches_tracked")]
    assert counter["data"] == [0] and type(counter["data"][0]) is int


def test_manifest_byte_ranges_and_hashes_match_the_safetensors_answer(client):
    manifest = answer(client, MODEL, format="manifest").json()
    content = answer(client, MODEL).content
    header, start = header_of(content)
    assert manifest["algorithm_version"] == ALGORITHM_VERSION and manifest["framework"] == "torch"
    assert manifest["safetensors_length"] == len(content) and manifest["header_length"] == start
    assert "checkpoint" not in manifest
    assert [entry["name"] for entry in manifest["tensors"]] == NAMES
    for entry in manifest["tensors"]:
        name = entry["name"]
        assert entry["shape"] == list(SHAPES[name])
        assert entry["dtype"] == ("int64" if name.endswith("num_batches_tracked") else "float32")
        assert entry["data_offsets"] == header[name]["data_offsets"]
        begin, end = entry["byte_range"]
        assert [begin - start, end - start] == entry["data_offsets"]
        assert hashlib.sha256(content[begin:end]).hexdigest() == entry["sha256"]
    layers = {entry["name"]: (entry["layer"], entry["role"]) for entry in manifest["tensors"]}
    assert layers["head.weight"] == ("head", "weight") and layers["1.running_var"] == ("1", "state")
    assert layers["0.bias"] == ("0", "bias")


def tensor_request(spec: dict[str, Any]) -> dict[str, Any]:
    """The /v1/tensor body of a manifest's canonical spec: its params flattened beside the other keys."""
    request = {**spec["params"], **{key: spec[key] for key in ("method", "shape", "dtype", "layout", "seed", "name")}}
    if "zero_rows" in spec:
        request["zero_rows"] = spec["zero_rows"]
    return request


REPRODUCED: dict[str, dict[str, Any]] = {
    "torch": MODEL,
    "torch gpt2 recurrent attention": {
        "layers": [
            {"type": "lstm", "input_size": 6, "hidden_size": 8, "num_layers": 2, "bidirectional": True},
            {"type": "mha", "embed_dim": 16, "num_heads": 4, "kdim": 6, "add_bias_kv": True},
            linear(16, 16, residual_projection=True),
            {"type": "conv_transpose2d", "in_channels": 4, "out_channels": 6, "kernel_size": [3, 2], "groups": 2},
        ],
        "scheme": "gpt2",
        "n_layer": 3,
        "dtype": "float64",
        "seed": 2**64 - 1,
    },
    "keras float16": {
        "layers": [
            {"type": "conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": [3]},
            {"type": "lstm", "input_size": 8, "hidden_size": 4},
            linear(8, 5, nonlinearity="relu"),
            {"type": "batch_norm2d", "num_features": 5},
            {"type": "mha", "embed_dim": 8, "num_heads": 2},
        ],
        "framework": "keras",
        "dtype": "float16",
    },
    "flax bfloat16": {
        "layers": [
            {"type": "mha", "embed_dim": 8, "num_heads": 2, "nonlinearity": "relu"},
            {"type": "gru", "input_size": 3, "hidden_size": 4},
            {"type": "embedding", "num_embeddings": 9, "embedding_dim": 4},
            {"type": "layer_norm", "normalized_shape": [4]},
            {"type": "tensor", "name": "params/extra", "shape": [3, 5], "init": {"method": "orthogonal"}},
        ],
        "framework": "flax",
        "scheme": "orthogonal",
        "dtype": "bfloat16",
        "seed": 11,
    },
    "explicit rules and layer inits": {
        "layers": [
            linear(12, 6, init={"bias": {"method": "constant", "value": 0.5}}, nonlinearity="leaky_relu",
                   negative_slope=0.1),
            {"type": "conv1d", "in_channels": 6, "out_channels": 4, "kernel_size": [3],
             "init": {"weight": {"method": "dirac"}}},
            {"type": "rnn", "input_size": 4, "hidden_size": 5, "init": {"weight_hh_l0": {"method": "eye"}}},
        ],
        "scheme": {"weight": {"method": "kaiming_uniform", "mode": "fan_out"}, "bias": {"method": "uniform"}},
    },
}


@pytest.mark.parametrize("model", REPRODUCED.values(), ids=REPRODUCED.keys())
def test_manifest_spec_reproduces_each_tensor_on_v1_tensor(client, model):
    """Every tensor is the /v1/tensor answer of its canonical spec, byte for byte (Flax DenseGeneral
    kernels are their 2-D matrix reshaped, so the bytes agree although the shapes differ)."""
    manifest = answer(client, model, format="manifest").json()
    slices = slices_of(answer(client, model).content)
    assert [entry["name"] for entry in manifest["tensors"]] == list(slices)
    for entry in manifest["tensors"]:
        spec = entry["init"]["spec"]
        assert spec["name"] == entry["name"] and spec["dtype"] == entry["dtype"]
        assert spec["seed"] == model.get("seed", 0)
        assert math.prod(spec["shape"]) == math.prod(entry["shape"])
        assert set(spec) - {"zero_rows"} == {"method", "params", "shape", "dtype", "layout", "seed", "name"}
        raw = client.post("/v1/tensor", params={"format": "raw"}, json=tensor_request(spec))
        assert raw.status_code == 200, (entry["name"], raw.text)
        assert json.loads(raw.headers["x-initserve-spec"]) == spec  # canonical: a fixed point
        assert raw.content == slices[entry["name"]], entry["name"]


def test_manifest_keeps_zero_rows_of_padding_idx(client):
    manifest = answer(client, MODEL, format="manifest").json()
    embedding = next(entry for entry in manifest["tensors"] if entry["name"] == "3.weight")
    assert embedding["init"]["spec"]["zero_rows"] == [[0, 1]]
    assert embedding["init"]["spec"]["method"] == "kaiming_normal" and embedding["init"]["source"] == "scheme"


@pytest.mark.parametrize(
    "scheme, method, gain",
    [
        ("xavier", "xavier_uniform", 5 / 3),
        ("he", "kaiming_normal", 5 / 3),
        ("orthogonal", "orthogonal", 5 / 3),
        ("framework", "kaiming_uniform", math.sqrt(2 / (1 + 5))),  # torch's own a=√5, whatever the activation
    ],
)
def test_manifest_fans_and_gain_of_a_tanh_linear(client, scheme, method, gain):
    model = {"layers": [linear(10, 64, nonlinearity="tanh"), linear(64, 32)], "scheme": scheme}
    entry = answer(client, model, format="manifest").json()["tensors"][0]
    init = entry["init"]
    assert entry["name"] == "0.weight" and init["spec"]["method"] == method
    assert init["fan_in"] == 10 and init["fan_out"] == 64
    assert init["source"] == ("framework default" if scheme == "framework" else "scheme")
    assert init["gain"] == pytest.approx(gain)


def test_xavier_tanh_values_use_gain_five_thirds(client):
    """The values carry the tanh gain the manifest reports."""
    model = {"layers": [linear(64, 64, nonlinearity="tanh"), linear(64, 64)], "scheme": "xavier"}
    tensors = load_safetensors(answer(client, model).content)
    bound = math.sqrt(6 / 128)
    assert np.abs(tensors["0.weight"]).max() <= 5 / 3 * bound * (1 + 1e-6)
    assert np.abs(tensors["0.weight"]).max() > bound * 1.3
    assert np.abs(tensors["1.weight"]).max() <= bound * (1 + 1e-6)
    assert rms(tensors["0.weight"]) == pytest.approx(5 / 3 * rms(tensors["1.weight"]), rel=0.1)


# ---------------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize(
    "framework, before, inserted, names",
    [
        ("torch", linear(8, 16, name="fc"), linear(4, 8), ["fc.weight", "fc.bias"]),
        ("keras", linear(8, 16), {"type": "conv1d", "in_channels": 2, "out_channels": 8, "kernel_size": [3]},
         ["dense/kernel", "dense/bias"]),
        ("flax", linear(8, 16), {"type": "layer_norm", "normalized_shape": [8]},
         ["params/Dense_0/kernel", "params/Dense_0/bias"]),
    ],
)
@pytest.mark.parametrize("scheme", ["framework", "xavier"])
def test_inserting_a_layer_keeps_the_bytes_of_a_named_layer(client, framework, before, inserted, names, scheme):
    alone = slices_of(answer(client, {"layers": [before], "framework": framework, "scheme": scheme, "seed": 5}).content)
    both = slices_of(
        answer(client, {"layers": [inserted, before], "framework": framework, "scheme": scheme, "seed": 5}).content
    )
    assert list(alone) == names and set(names) < set(both)
    for name in names:
        assert both[name] == alone[name], name


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "json", "manifest"])
def test_same_request_same_bytes_and_etag(client, fmt):
    first = answer(client, MODEL, format=fmt)
    second = answer(client, MODEL, format=fmt)
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_a_different_seed_changes_every_random_tensor(client):
    seeds = (0, 1, 2**64 - 1)
    answers = {seed: answer(client, {**MODEL, "seed": seed}) for seed in seeds}
    slices = {seed: slices_of(response.content) for seed, response in answers.items()}
    for name in NAMES:
        distinct = len({slices[seed][name] for seed in seeds})
        assert distinct == (len(seeds) if name in RANDOM else 1), name
    assert len({response.headers["etag"] for response in answers.values()}) == len(seeds)


@pytest.mark.parametrize("dtype, code", [("float64", "F64"), ("float16", "F16"), ("bfloat16", "BF16")])
def test_dtypes_are_the_float32_values_rounded(client, dtype, code):
    single = read_tensors(answer(client, MODEL).content)
    other = answer(client, {**MODEL, "dtype": dtype}).content
    header, _ = header_of(other)
    tensors = read_tensors(other)
    for name in NAMES:
        if name.endswith("num_batches_tracked"):
            assert header[name]["dtype"] == "I64" and tensors[name].dtype == np.int64
            continue
        assert header[name]["dtype"] == code, name
        if dtype == "float64":
            np.testing.assert_array_equal(tensors[name].astype(np.float32), single[name])
        elif dtype == "float16":
            np.testing.assert_array_equal(tensors[name], single[name].astype(np.float16))
        else:
            np.testing.assert_array_equal(tensors[name], bf16_bits(single[name]))
    as_json = {entry["name"]: entry for entry in answer(client, {**MODEL, "dtype": dtype}, format="json").json()["tensors"]}
    assert as_json["0.weight"]["dtype"] == dtype and as_json["1.num_batches_tracked"]["dtype"] == "int64"


def test_bfloat16_model_as_npz_is_a_clear_422(client):
    problem = assert_model_problem(post_model(client, {**MODEL, "dtype": "bfloat16"}, format="npz"), 422, "format", "npz")
    assert "bfloat16" in problem["detail"] and "safetensors" in problem["detail"]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_num_batches_tracked_is_a_zero_d_int64(client, dtype):
    model = {"layers": [BATCH_NORM], "dtype": dtype}
    content = answer(client, model).content
    header, _ = header_of(content)
    assert header["0.num_batches_tracked"]["dtype"] == "I64" and header["0.num_batches_tracked"]["shape"] == []
    counter = load_safetensors(content)["0.num_batches_tracked"]
    assert counter.dtype == np.int64 and counter.shape == () and counter == 0
    npz = load_npz(answer(client, model, format="npz").content)["0.num_batches_tracked"]
    assert npz.dtype == np.int64 and npz.shape == () and npz == 0
    entry = answer(client, model, format="manifest").json()["tensors"][-1]
    assert entry["name"] == "0.num_batches_tracked" and entry["dtype"] == "int64" and entry["shape"] == []


def test_torch_loads_the_state_dict_strictly(client):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load as load_torch

    model = {
        "layers": [
            linear(10, 64),
            {"type": "batch_norm1d", "num_features": 64},
            {"type": "lstm", "input_size": 8, "hidden_size": 16, "num_layers": 2, "bidirectional": True, "proj_size": 4},
            {"type": "mha", "embed_dim": 16, "num_heads": 4, "vdim": 8},
            {"type": "embedding", "num_embeddings": 12, "embedding_dim": 8, "padding_idx": -1},
            {"type": "conv2d", "in_channels": 4, "out_channels": 8, "kernel_size": [3, 1], "groups": 2},
            {"type": "layer_norm", "normalized_shape": [4, 8]},
        ],
        "seed": 9,
    }
    module = torch.nn.Sequential(
        torch.nn.Linear(10, 64),
        torch.nn.BatchNorm1d(64),
        torch.nn.LSTM(8, 16, num_layers=2, bidirectional=True, proj_size=4),
        torch.nn.MultiheadAttention(16, 4, vdim=8),
        torch.nn.Embedding(12, 8, padding_idx=11),
        torch.nn.Conv2d(4, 8, (3, 1), groups=2),
        torch.nn.LayerNorm([4, 8]),
    )
    state = load_torch(answer(client, model).content)
    assert list(state) != [] and set(state) == set(module.state_dict())
    module.load_state_dict(state, strict=True)
    for name, tensor in module.state_dict().items():
        assert tensor.dtype == state[name].dtype and torch.equal(tensor, state[name]), name
    assert module[1].num_batches_tracked.dtype == torch.int64
    assert torch.count_nonzero(module[4].weight[11]) == 0


# ---------------------------------------------------------------------------------------------- tensors=


def test_tensors_selects_a_subset_in_model_order(client):
    wanted = "head.bias, 0.weight,1.num_batches_tracked"
    order = ["0.weight", "1.num_batches_tracked", "head.bias"]
    full = slices_of(answer(client, MODEL).content)
    subset = answer(client, MODEL, tensors=wanted).content
    header, _ = header_of(subset)
    assert [name for name in header if name != "__metadata__"] == order
    assert slices_of(subset) == {name: full[name] for name in order}
    assert list(load_npz(answer(client, MODEL, tensors=wanted, format="npz").content)) == order
    as_json = answer(client, MODEL, tensors=wanted, format="json").json()
    assert [entry["name"] for entry in as_json["tensors"]] == order
    manifest = answer(client, MODEL, tensors=wanted, format="manifest").json()
    assert [entry["name"] for entry in manifest["tensors"]] == order
    assert manifest["safetensors_length"] == len(subset)
    for entry in manifest["tensors"]:
        begin, end = entry["byte_range"]
        assert subset[begin:end] == full[entry["name"]]
        assert hashlib.sha256(subset[begin:end]).hexdigest() == entry["sha256"]


def test_json_limit_applies_to_the_selected_tensors(client):
    assert_model_problem(post_model(client, mlp(), format="json"), 413, "format", "json")
    small = answer(client, mlp(), format="json", tensors="2.bias,2.weight,0.bias").json()
    assert [entry["name"] for entry in small["tensors"]] == ["0.bias", "2.weight", "2.bias"]


@pytest.mark.parametrize("tensors, value", [("nope", "nope"), ("0.weight,0.kernel", "0.kernel"), ("0.weight,", "")])
def test_unknown_tensor_name_is_a_422(client, tensors, value):
    problem = assert_model_problem(post_model(client, MODEL, tensors=tensors), 422, "tensors", value)
    assert "0.weight" in problem["detail"]  # the message lists names of the model


# ---------------------------------------------------------------------------------------------- schemes


def rms(array: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(array.astype(np.float64)))))


FRAMEWORK_NAMES = {
    "torch": lambda i: (f"{i}.weight", f"{i}.bias"),
    "keras": lambda i: ("dense/kernel", "dense/bias") if i == 0 else (f"dense_{i}/kernel", f"dense_{i}/bias"),
    "flax": lambda i: (f"params/Dense_{i}/kernel", f"params/Dense_{i}/bias"),
}


def theory_std(framework: str, scheme: str, fan_in: int, fan_out: int) -> float:
    """The standard deviation each scheme promises a linear weight (no activation given)."""
    if scheme == "framework":
        scheme = {"torch": "torch", "keras": "xavier", "flax": "lecun"}[framework]
    return {
        "torch": 1 / math.sqrt(3 * fan_in),  # kaiming_uniform(a=√5): U(±1/√fan_in)
        "xavier": math.sqrt(2 / (fan_in + fan_out)),
        "he": math.sqrt(2 / fan_in),
        "lecun": math.sqrt(1 / fan_in),
        "orthogonal": math.sqrt(1 / max(fan_in, fan_out)),
        "small_normal": 0.01,
        "gpt2": 0.02,
    }[scheme]


SCHEMES = ["framework", "xavier", "he", "lecun", "orthogonal", "small_normal", "gpt2"]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("framework", ["torch", "keras", "flax"])
def test_classic_mlp_under_every_scheme(client, framework, scheme):
    content = answer(client, mlp(framework=framework, scheme=scheme, seed=1)).content
    tensors = load_safetensors(content)
    header, _ = header_of(content)
    expected_names = [name for i in range(3) for name in FRAMEWORK_NAMES[framework](i)]
    assert [name for name in header if name != "__metadata__"] == expected_names
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(MLP_SIZES)):
        weight_name, bias_name = FRAMEWORK_NAMES[framework](i)
        weight, bias = tensors[weight_name], tensors[bias_name]
        assert weight.shape == ((fan_out, fan_in) if framework == "torch" else (fan_in, fan_out))
        assert bias.shape == (fan_out,) and weight.dtype == bias.dtype == np.float32
        std = theory_std(framework, scheme, fan_in, fan_out)
        if weight.size >= 500:  # big enough for an empirical standard deviation
            assert rms(weight) == pytest.approx(std, rel=0.15), (weight_name, rms(weight), std)
            assert abs(float(weight.mean())) < 0.25 * std
        if scheme == "orthogonal":
            gram = weight.T @ weight if weight.shape[0] >= weight.shape[1] else weight @ weight.T
            np.testing.assert_allclose(gram, np.eye(min(weight.shape)), atol=1e-5)
        if scheme in ("xavier",) or (scheme, framework) in (("framework", "torch"), ("framework", "keras")):
            assert np.abs(weight).max() <= std * math.sqrt(3) * (1 + 1e-6)  # uniform
        if scheme == "framework" and framework == "torch":  # U(±1/√fan_in)
            assert np.all(np.abs(bias) <= 1 / math.sqrt(fan_in)) and np.count_nonzero(bias) == bias.size
        else:  # presets zero the biases; keras and flax do so by default
            assert np.count_nonzero(bias) == 0, bias_name


def test_gpt2_scales_residual_projections(client):
    model = {
        "layers": [linear(64, 64), linear(64, 64, residual_projection=True), linear(64, 64, residual_projection=True)],
        "scheme": "gpt2",
    }
    tensors = load_safetensors(answer(client, model).content)
    assert rms(tensors["0.weight"]) == pytest.approx(0.02, rel=0.1)
    for name in ("1.weight", "2.weight"):  # n_layer defaults to 2 marked layers / 2 = 1: 0.02/√2
        assert rms(tensors[name]) == pytest.approx(0.02 / math.sqrt(2), rel=0.1)
    scaled = load_safetensors(answer(client, {**model, "n_layer": 8}).content)
    assert rms(scaled["1.weight"]) == pytest.approx(0.02 / 4, rel=0.1)


# ---------------------------------------------------------------------------------------------- errors

BAD_JSON = '{"layers": [{"type": "linear", "in_features": 3, "out_features": 2}'
TINY = linear(3, 2)

# (id, body, query, field, value): all 422; a str body is sent verbatim; ANY: the value is not pinned down.
ERRORS: list[Any] = [
    ("unknown layer type", {"layers": [{"type": "foo"}]}, {}, "layers.0.type", "foo"),
    ("missing layer type", {"layers": [{"in_features": 3}]}, {}, "layers.0.type", None),
    ("missing size", {"layers": [{"type": "linear", "in_features": 3}]}, {}, "layers.0.out_features", None),
    ("embed_dim % num_heads", {"layers": [{"type": "mha", "embed_dim": 10, "num_heads": 3}]}, {},
     "layers.0.num_heads", 3),
    ("bad init", {"layers": [linear(3, 2, init={"weight": {"method": "normal", "std": -1}})]}, {},
     "layers.0.init.weight.std", -1.0),
    ("unknown init method", {"layers": [linear(3, 2, init={"weight": {"method": "gaussian"}})]}, {},
     "layers.0.init.weight.method", "gaussian"),
    ("unknown init key", {"layers": [linear(3, 2, init={"kernel": {"method": "normal"}})]}, {},
     "layers.0.init.kernel", ANY),
    ("unknown scheme", {"layers": [TINY], "scheme": "glorot"}, {}, "scheme", "glorot"),
    ("scheme rule bad spec", {"layers": [TINY], "scheme": {"weight": {"method": "normal", "std": -1}}}, {},
     "scheme.weight.std", -1.0),
    ("scheme rule unknown role", {"layers": [TINY], "scheme": {"gamma": {"method": "zeros"}}}, {}, "scheme.gamma",
     ANY),
    ("scheme rules empty", {"layers": [TINY], "scheme": {}}, {}, "scheme", ANY),
    ("string size", {"layers": [linear("3", 2)]}, {}, "layers.0.in_features", "3"),
    ("float size", {"layers": [linear(3, 2.0)]}, {}, "layers.0.out_features", 2.0),
    ("negative size", {"layers": [linear(3, -2)]}, {}, "layers.0.out_features", -2),
    ("unknown layer field", {"layers": [linear(3, 2, in_feature=3)]}, {}, "layers.0.in_feature", 3),
    ("string seed", {"layers": [TINY], "seed": "x"}, {}, "seed", "x"),
    ("negative seed", {"layers": [TINY], "seed": -1}, {}, "seed", -1),
    ("seed 2**64", {"layers": [TINY], "seed": 2**64}, {}, "seed", 2**64),
    ("int64 model dtype", {"layers": [TINY], "dtype": "int64"}, {}, "dtype", "int64"),
    ("unknown framework", {"layers": [TINY], "framework": "jax"}, {}, "framework", "jax"),
    ("layers not a list", {"layers": TINY}, {}, "layers", ANY),
    ("n_layer without gpt2", {"layers": [TINY], "n_layer": 2}, {}, "n_layer", 2),
    ("empty layers", {"layers": []}, {}, "layers", []),
    ("missing layers", {}, {}, "layers", None),
    ("unknown top-level field", {"layers": [TINY], "schema": "he"}, {}, "schema", "he"),
    ("invalid JSON", BAD_JSON, {}, "body", None),
    ("JSON array", "[1]", {}, "body", [1]),
    ("unknown query parameter", {"layers": [TINY]}, {"fromat": "npz"}, "fromat", "npz"),
    ("format raw", {"layers": [TINY]}, {"format": "raw"}, "format", "raw"),
    ("format npy", {"layers": [TINY]}, {"format": "npy"}, "format", "npy"),
    ("strict not a bool", {"layers": [TINY]}, {"strict": "maybe"}, "strict", "maybe"),
    ("duplicate tensor names", {"layers": [linear(3, 2, name="a"), linear(3, 2, name="a")]}, {}, "layers.1.name",
     "a"),
    ("tensor entry clashes", {"layers": [TINY, {"type": "tensor", "name": "0.weight", "shape": [1],
                                                "init": {"method": "zeros"}}]}, {}, "layers.1.name", "0.weight"),
    ("tensor entry without init", {"layers": [{"type": "tensor", "name": "t", "shape": [2]}]}, {}, "layers.0.init",
     None),
    ("keras num_layers=2", {"layers": [{"type": "lstm", "input_size": 3, "hidden_size": 2, "num_layers": 2}],
                            "framework": "keras"}, {}, "layers.0.num_layers", 2),
    ("flax padding_idx", {"layers": [{"type": "embedding", "num_embeddings": 4, "embedding_dim": 2, "padding_idx": 0}],
                          "framework": "flax"}, {}, "layers.0.padding_idx", 0),
    ("groups", {"layers": [{"type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": [3], "groups": 2}]},
     {}, "layers.0.groups", 2),
    ("proj_size", {"layers": [{"type": "lstm", "input_size": 3, "hidden_size": 2, "proj_size": 2}]}, {},
     "layers.0.proj_size", 2),
    ("padding_idx out of range", {"layers": [{"type": "embedding", "num_embeddings": 4, "embedding_dim": 2,
                                              "padding_idx": 4}]}, {}, "layers.0.padding_idx", 4),
    ("unknown nonlinearity", {"layers": [linear(3, 2, nonlinearity="swishy")]}, {}, "layers.0.nonlinearity",
     "swishy"),
    ("init gain and nonlinearity", {"layers": [linear(3, 2, init={"weight": {"method": "xavier_uniform", "gain": 2,
                                                                            "nonlinearity": "relu"}})]}, {},
     "layers.0.init.weight.gain", 2.0),
    ("repeated query parameter", {"layers": [TINY]}, {"format": ["json", "npz"]}, "format", ["json", "npz"]),
    # sizes past int64 were OverflowErrors (500s) in the fan computations (found fuzzing, test_fuzz)
    ("size over int64", {"layers": [linear(10**400, 2)]}, {}, "layers.0.in_features", 10**400),
    ("kernel over int64", {"layers": [{"type": "conv2d", "in_channels": 2, "out_channels": 2,
                                       "kernel_size": [2**63, 1]}]}, {}, "layers.0.kernel_size", [2**63, 1]),
    ("tensor entry dimension over int64", {"layers": [{"type": "tensor", "name": "t", "shape": [2**63, 2],
                                                       "init": {"method": "xavier_uniform"}}]}, {}, "layers.0.shape",
     [2**63, 2]),
]


def unwrap(case: Any) -> Any:
    if hasattr(case, "values"):
        return pytest.param(*case.values[1:], marks=case.marks, id=case.values[0])
    return pytest.param(*case[1:], id=case[0])


@pytest.mark.parametrize("body, query, field, value", [unwrap(case) for case in ERRORS])
def test_bad_model_requests_are_422_naming_the_field(client, body, query, field, value):
    assert_model_problem(post_model(client, body, **query), 422, field, value)


def test_validation_problem_lists_every_error(client):
    body = {"layers": [linear("3", 2), {"type": "linear", "in_features": 3}], "seed": "x"}
    problem = assert_model_problem(post_model(client, body), 422, "layers.0.in_features", "3")
    assert {error["field"] for error in problem["errors"]} == {"layers.0.in_features", "layers.1.out_features", "seed"}


def test_wrong_verb_is_a_405_problem(client):
    response = client.get("/v1/model")
    assert response.status_code == 405 and response.json()["status"] == 405


# ---------------------------------------------------------------------------------------------- limits


MLP_ELEMENTS = sum(a * b + b for a, b in itertools.pairwise(MLP_SIZES))  # 2817
WIDE = {"layers": [linear(256, 256) for _ in range(40)]}  # 40 tensors of 65 536 elements (= max_elements)


@pytest.mark.parametrize(
    "settings, body, query, field, value, variable",
    [
        (Settings(max_model_elements=MLP_ELEMENTS - 1), mlp(), {}, "layers", MLP_ELEMENTS, "MAX_MODEL_ELEMENTS"),
        (Settings(max_model_elements=1 << 20), WIDE, {}, "layers", 40 * (256 * 256 + 256), "MAX_MODEL_ELEMENTS"),
        (SMALL, {"layers": [TINY, linear(300, 300)]}, {}, "layers.1", [300, 300], "MAX_ELEMENTS"),
        (SMALL, {"layers": [{"type": "tensor", "name": "t", "shape": [1 << 20, 1 << 20], "init": {"method": "zeros"}}]},
         {}, "layers.0", [1 << 20, 1 << 20], "MAX_ELEMENTS"),
        (SMALL, mlp(), {"format": "json"}, "format", "json", "MAX_JSON_ELEMENTS"),
        (SMALL, {"layers": [linear(10, 65)], "scheme": "orthogonal"}, {}, "layers.0", [65, 10], "MAX_DENSE_SIDE"),
        (SMALL, {"layers": [{"type": "lstm", "input_size": 2, "hidden_size": 17}], "framework": "keras"}, {},
         "layers.0", [17, 68], "MAX_DENSE_SIDE"),
    ],
    ids=["model elements", "wide model", "tensor elements", "huge tensor entry", "json", "orthogonal side",
         "keras recurrent kernel side"],
)
def test_limits_are_413_before_any_work(no_generation, settings, body, query, field, value, variable):
    with TestClient(create_app(settings)) as client:
        started = time.perf_counter()
        problem = assert_model_problem(post_model(client, body, **query), 413, field, value)
        assert time.perf_counter() - started < 1.0
    assert f"INITSERVE_{variable}" in problem["detail"]


@pytest.mark.parametrize("path", ["/v1/model", "/v1/stats"])
def test_stacked_recurrent_layers_count_toward_max_layers(path):
    """Found fuzzing: ``{"type": "lstm", "num_layers": 10**12}`` is one entry of ``layers``, so it passed
    INITSERVE_MAX_LAYERS, and the core built its stacked layers' tensors one by one: minutes of CPU and
    gigabytes, then a MemoryError (500)."""
    lstm = {"type": "lstm", "input_size": 2, "hidden_size": 2, "num_layers": 3}
    with TestClient(create_app(Settings(max_layers=3))) as client:
        assert client.post(path, json={"layers": [lstm]}).status_code == 200
        assert_model_problem(client.post(path, json={"layers": [lstm, linear(2, 2)]}), 413, "layers", 4)
        started = time.perf_counter()
        huge = {"layers": [{**lstm, "num_layers": 10**12}]}
        assert_model_problem(client.post(path, json=huge), 413, "layers", 10**12)
        assert time.perf_counter() - started < 1.0


def test_model_limits_are_inclusive():
    with TestClient(create_app(Settings(max_model_elements=MLP_ELEMENTS, max_json_elements=MLP_ELEMENTS,
                                        max_dense_side=64))) as client:
        assert answer(client, mlp(), format="json").json()["tensors"][0]["shape"] == [64, 10]
        assert answer(client, mlp(scheme="orthogonal")).status_code == 200  # sides 64 = max_dense_side


def test_body_over_max_upload_bytes_is_413(no_generation):
    body = json.dumps(mlp())
    with TestClient(create_app(Settings(max_upload_bytes=len(body) - 1))) as client:
        assert_model_problem(post_model(client, body), 413, "body", len(body))
    with TestClient(create_app(Settings(max_upload_bytes=len(body)))) as client:
        assert_model_problem(post_model(client, body, format="nope"), 422, "format", "nope")  # got past the limit


def test_chunked_body_over_max_upload_bytes_is_413():
    body = json.dumps(mlp())
    with TestClient(create_app(Settings(max_upload_bytes=len(body) - 1))) as client:
        response = client.post("/v1/model", content=iter([body.encode()]), headers={"content-type": "application/json"})
    assert response.status_code == 413
