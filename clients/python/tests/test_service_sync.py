"""The sync client against the service in-process: every method, every endpoint, bytes equal to the service's."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from client_cases import LAYERS, SPECS

from initserve_client import Client, TensorSpec
from initserve_client.catalog import METHODS
from initserve_client.errors import InvalidRequest, TooLarge

core = pytest.importorskip("initserve.core", reason="the initserve service package (reference values)")
ml_dtypes = pytest.importorskip("ml_dtypes")

def spec_id(spec: dict[str, Any]) -> str:
    return str(spec["method"])


def reference(spec: dict[str, Any]) -> np.ndarray:
    """The core's values in storage dtype (bfloat16 as uint16 bit patterns)."""
    return np.asarray(core.resolve(**spec).region())


def split(spec: dict[str, Any]) -> tuple[str, list[int], dict[str, Any]]:
    rest = dict(spec)
    return rest.pop("method"), rest.pop("shape"), rest


def raw_model(transport: httpx.BaseTransport, body: dict[str, Any], fmt: str = "safetensors",
              tensors: str | None = None) -> httpx.Response:
    """``POST /v1/model`` with plain httpx (the oracle)."""
    params = {"format": fmt, **({"tensors": tensors} if tensors else {})}
    with httpx.Client(transport=transport, base_url="http://initserve.test") as http:
        response = http.post("/v1/model", params=params, json=body)
    assert response.status_code == 200, response.text
    return response


def header_of(content: bytes) -> dict[str, Any]:
    (length,) = struct.unpack_from("<Q", content)
    header: dict[str, Any] = json.loads(content[8 : 8 + length])
    header.pop("__metadata__", None)
    return header


def test_every_method_is_covered() -> None:
    assert {spec["method"] for spec in SPECS} == set(METHODS)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_tensor_equals_the_core(client: Client, spec: dict[str, Any]) -> None:
    method, shape, params = split(spec)
    got = client.tensor(method, shape, **params)
    want = reference(spec)
    assert got.shape == tuple(shape) and got.dtype == want.dtype
    assert got.tobytes() == want.tobytes()
    assert got.flags.writeable


@pytest.mark.parametrize("spec", SPECS[3:9], ids=spec_id)
def test_tensor_spec_form_and_aliases_equal_keyword_form(client: Client, spec: dict[str, Any]) -> None:
    method, shape, params = split(spec)
    common = {key: params.pop(key) for key in ("dtype", "layout", "seed", "name") if key in params}
    alias = METHODS[method].aliases[0] if METHODS[method].aliases else method
    got = client.tensor(TensorSpec(alias, tuple(shape), params=params, **common))
    assert got.tobytes() == reference(spec).tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_float_dtypes(client: Client, dtype: str) -> None:
    got = client.tensor("normal", [4, 3], dtype=dtype, seed=3)
    assert got.dtype == np.dtype(dtype)
    assert got.tobytes() == reference({"method": "normal", "shape": [4, 3], "dtype": dtype, "seed": 3}).tobytes()


def test_int64_zero_rows_zero_size_and_0d(client: Client) -> None:
    ints = client.tensor("eye", [3, 3], dtype="int64")
    assert ints.dtype == np.int64 and (ints == np.eye(3, dtype=np.int64)).all()
    padded = client.tensor("normal", [5, 2], zero_rows=[[1, 3]], name="emb")
    assert (padded[1:3] == 0).all() and (padded[[0, 3, 4]] != 0).all()
    assert padded.tobytes() == reference({"method": "normal", "shape": [5, 2], "zero_rows": [[1, 3]],
                                          "name": "emb"}).tobytes()
    empty = client.tensor("normal", [0, 4])
    assert empty.shape == (0, 4) and empty.dtype == np.float32
    scalar = client.tensor("constant", [], value=2.5)
    assert scalar.shape == () and float(scalar) == 2.5


def test_bfloat16_as_ml_dtypes(client: Client) -> None:
    spec = {"method": "xavier_uniform", "shape": [16, 8], "dtype": "bfloat16", "seed": 5}
    got = client.tensor("xavier_uniform", [16, 8], dtype="bfloat16", seed=5)
    assert got.dtype == np.dtype(ml_dtypes.bfloat16)
    assert (got.view(np.uint16) == reference(spec)).all()


def test_bfloat16_fallback_is_float32_with_the_same_values(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import ml_dtypes now raises ImportError
    spec = {"method": "xavier_uniform", "shape": [16, 8], "dtype": "bfloat16", "seed": 5}
    got = client.tensor("xavier_uniform", [16, 8], dtype="bfloat16", seed=5)
    assert got.dtype == np.float32 and got.shape == (16, 8)
    assert ((got.view(np.uint32) >> 16).astype(np.uint16) == reference(spec)).all()
    assert (got.view(np.uint32) & 0xFFFF == 0).all()
    weights = client.model(LAYERS[:1], dtype="bfloat16")
    assert all(array.dtype == np.float32 for array in weights.values())


def test_model_equals_the_service_bytes_in_its_order(client: Client, sync_transport: httpx.BaseTransport) -> None:
    body = {"layers": LAYERS, "framework": "torch", "scheme": "he", "seed": 3, "dtype": "float32"}
    content = raw_model(sync_transport, body).content
    header = header_of(content)
    base = 8 + struct.unpack_from("<Q", content)[0]
    weights = client.model(LAYERS, scheme="he", seed=3)
    assert list(weights) == sorted(header, key=lambda name: header[name]["data_offsets"][0])
    for name, array in weights.items():
        start, end = header[name]["data_offsets"]
        assert list(array.shape) == header[name]["shape"]
        assert array.tobytes() == content[base + start : base + end], name
    assert weights["bn.num_batches_tracked"].dtype == np.int64
    manifest = client.manifest(LAYERS, scheme="he", seed=3)
    assert [tensor["name"] for tensor in manifest["tensors"]] == list(weights)


def test_model_options_subset_and_bfloat16(client: Client, sync_transport: httpx.BaseTransport) -> None:
    keras_layers = [{"type": "dense", "in_features": 10, "out_features": 4}, {"type": "dense", "in_features": 4,
                                                                              "out_features": 1}]
    weights = client.model(keras_layers, framework="keras", scheme="lecun", seed=9, dtype="bfloat16")
    content = raw_model(sync_transport, {"layers": keras_layers, "framework": "keras", "scheme": "lecun", "seed": 9,
                                         "dtype": "bfloat16"}).content
    header = header_of(content)
    base = 8 + struct.unpack_from("<Q", content)[0]
    assert list(weights) == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
    for name, array in weights.items():
        assert array.dtype == np.dtype(ml_dtypes.bfloat16)
        start, end = header[name]["data_offsets"]
        assert array.tobytes() == content[base + start : base + end]
    subset = client.model(LAYERS, tensors=["fc1.weight", "conv.bias"], n_layer=None)
    assert list(subset) == ["conv.bias", "fc1.weight"]  # model order, not request order
    rules = client.model(LAYERS[2:3], scheme={"weight": {"method": "orthogonal", "gain": 2.0}, "bias": None})
    assert np.allclose(rules["fc1.weight"] @ rules["fc1.weight"].T, 4 * np.eye(8), atol=1e-5)


def test_stats_of_a_tensor_and_of_a_model(client: Client) -> None:
    report = client.stats("he_normal", [64, 32], bins=5, sample=1000, seed=1)
    (row,) = report["tensors"]
    assert row["method"] == "kaiming_normal" and len(row["histogram"]["counts"]) == 5 and row["sample_size"] == 1000
    assert client.stats(TensorSpec("he_normal", [64, 32], seed=1), bins=5, sample=1000) == report
    model_report = client.stats(layers=LAYERS, scheme="xavier", seed=2)
    assert [row["name"] for row in model_report["tensors"]][:2] == ["conv.weight", "conv.bias"]


def test_propagation(client: Client) -> None:
    layers = [{"type": "linear", "in_features": 64, "out_features": 64, "nonlinearity": "tanh"}] * 3
    report = client.propagation(layers, scheme="small_normal", batch_size=32, input={"method": "uniform", "low": -1.0,
                                                                                     "high": 1.0})
    stds = [layer["activation"]["std"] for layer in report["layers"]]
    assert len(stds) == 3 and stds[0] > stds[1] > stds[2]


def test_catalogue_endpoints(client: Client) -> None:
    methods = client.methods()
    assert [entry["name"] for entry in methods] == list(METHODS)
    assert client.gain("leaky_relu", 0.2) == pytest.approx(1.3867504905630728, abs=0)
    assert client.gain("relu") == pytest.approx(2**0.5)
    assert client.fans([64, 3, 3, 3]) == {"shape": [64, 3, 3, 3], "layout": "torch", "fan_in": 27, "fan_out": 576,
                                          "receptive_field": 9}
    assert client.fans([3, 3, 3, 64], layout="keras")["fan_out"] == 576


def test_server_side_refusals(client: Client) -> None:
    with pytest.raises(InvalidRequest) as invalid:
        client.tensor("normal", [2], std=-1.0)
    assert invalid.value.status == 422 and invalid.value.field == "std" and invalid.value.value == -1.0
    assert str(invalid.value) == invalid.value.detail and "std" in invalid.value.detail
    with pytest.raises(TooLarge) as large:
        client.tensor("normal", [2048, 1024])
    assert large.value.status == 413 and large.value.field == "shape" and large.value.value == [2048, 1024]


@pytest.mark.parametrize("fmt", ["npy", "safetensors", "json", "raw"])
def test_download_tensor_formats(client: Client, tmp_path: Path, fmt: str) -> None:
    spec = {"method": "kaiming_uniform", "shape": [8, 4], "seed": 4, "name": "w"}
    target = tmp_path / f"w.{fmt}"
    path = client.download_tensor("kaiming_uniform", [8, 4], target, format=fmt, seed=4, name="w")
    assert path == target and [p.name for p in tmp_path.iterdir()] == [target.name]
    want = reference(spec)
    data = target.read_bytes()
    if fmt == "npy":
        assert np.load(io.BytesIO(data), allow_pickle=False).tobytes() == want.tobytes()
    elif fmt == "raw":
        assert data == want.tobytes()
    elif fmt == "json":
        assert np.asarray(json.loads(data)["data"], dtype=np.float32).tobytes() == want.tobytes()
    else:
        length = struct.unpack_from("<Q", data)[0]
        assert data[8 + length :] == want.tobytes() and "w" in header_of(data)
    spec_path = client.download_tensor(TensorSpec("he_uniform", [8, 4], seed=4, name="w"), path=tmp_path / "s.bin",
                                       format=fmt)
    assert spec_path.read_bytes() == data


def test_download_tensor_refusal_leaves_nothing(client: Client, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as error:
        client.download_tensor("normal", [4], tmp_path / "w.npy", format="npy", dtype="bfloat16")
    assert error.value.field == "format"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "json", "manifest"])
def test_download_model_formats(client: Client, sync_transport: httpx.BaseTransport, tmp_path: Path,
                                fmt: str) -> None:
    body = {"layers": LAYERS, "framework": "torch", "scheme": "xavier", "seed": 1, "dtype": "float32"}
    target = tmp_path / f"model.{fmt}"
    path = client.download_model(LAYERS, target, format=fmt, scheme="xavier", seed=1)
    assert path == target and [p.name for p in tmp_path.iterdir()] == [target.name]
    assert target.read_bytes() == raw_model(sync_transport, body, fmt).content
    if fmt == "safetensors":
        data = target.read_bytes()
        for tensor in client.manifest(LAYERS, scheme="xavier", seed=1)["tensors"]:
            start, end = tensor["byte_range"]
            assert hashlib.sha256(data[start:end]).hexdigest() == tensor["sha256"]
    unverified = client.download_model(LAYERS, tmp_path / "again", format=fmt, verify=False, scheme="xavier", seed=1)
    assert unverified.read_bytes() == target.read_bytes()


def test_download_model_bfloat16_json_verifies(client: Client, tmp_path: Path) -> None:
    path = client.download_model(LAYERS[2:], tmp_path / "m.json", format="json", dtype="bfloat16")
    assert json.loads(path.read_bytes())["tensors"][0]["dtype"] == "bfloat16"


def test_progress_bar_only_when_asked(sync_transport: httpx.BaseTransport, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with Client("http://initserve.test", transport=sync_transport, progress=True) as noisy:
        noisy.download_tensor("normal", [1000], tmp_path / "a.npy")
        assert "a.npy" in capsys.readouterr().err
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, "tqdm", None)  # tqdm not installed: no bar, no error
            noisy.download_tensor("normal", [1000], tmp_path / "b.npy")
        assert capsys.readouterr().err == ""
    with Client("http://initserve.test", transport=sync_transport) as quiet:  # progress=None, stderr not a tty
        quiet.download_tensor("normal", [1000], tmp_path / "c.npy")
        quiet.model(LAYERS)
    assert capsys.readouterr().err == ""
