"""``/v1/tensor``: every format carries exactly the core's values; GET ≡ POST; aliases ≡ names."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors

from initserve.core import ALGORITHM_VERSION, METHODS, resolve

from .cases import SPECS, expected, load_npy, query_of, spec_id

FORMATS = ("npy", "safetensors", "json", "raw")


def safetensors_metadata(content: bytes) -> dict[str, str]:
    (length,) = struct.unpack("<Q", content[:8])
    header: dict[str, Any] = json.loads(content[8 : 8 + length])
    return dict(header["__metadata__"])


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_npy_equals_core(client, spec):
    response = client.post("/v1/tensor", json=spec)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert int(response.headers["content-length"]) == len(response.content)
    array = load_npy(response.content)
    want = expected(spec)
    assert array.dtype == want.dtype and array.shape == tuple(spec["shape"])
    np.testing.assert_array_equal(array, want)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_get_and_post_give_identical_bytes(client, spec):
    for fmt in FORMATS:
        posted = client.post("/v1/tensor", params={"format": fmt}, json=spec)
        got = client.get("/v1/tensor", params={**query_of(spec), "format": fmt})
        assert posted.status_code == got.status_code == 200, (posted.text, got.text)
        assert posted.content == got.content
        assert posted.headers["etag"] == got.headers["etag"]


@pytest.mark.parametrize("method", [m for m in METHODS if m.aliases], ids=lambda m: m.name)
def test_aliases_give_identical_bytes(client, method):
    base = next(spec for spec in SPECS if spec["method"] == method.name)
    canonical = client.post("/v1/tensor", json=base)
    for alias in method.aliases:
        aliased = client.post("/v1/tensor", json={**base, "method": alias})
        assert aliased.status_code == 200
        assert aliased.content == canonical.content
        assert aliased.headers["x-initserve-spec"] == canonical.headers["x-initserve-spec"]


def test_headers_carry_version_and_canonical_spec(client):
    spec = {"method": "random_normal", "shape": [2, 3], "std": 0.5, "seed": 3}
    response = client.post("/v1/tensor", json=spec)
    assert response.headers["x-initserve-algorithm-version"] == ALGORITHM_VERSION
    assert json.loads(response.headers["x-initserve-spec"]) == resolve(**spec).spec.canonical()
    assert " " not in response.headers["x-initserve-spec"]  # compact
    assert response.headers["cache-control"].endswith("immutable")
    other = client.post("/v1/tensor", json={**spec, "seed": 4})
    assert other.headers["etag"] != response.headers["etag"]


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_json_values_equal_core(client, spec):
    response = client.post("/v1/tensor", params={"format": "json"}, json=spec)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    want = expected(spec)
    assert body["name"] == spec.get("name", "") and body["shape"] == spec["shape"]
    assert body["dtype"] == spec.get("dtype", "float32")
    assert body["algorithm_version"] == ALGORITHM_VERSION
    np.testing.assert_array_equal(np.asarray(body["data"], dtype=np.float64).astype(want.dtype), want.ravel())


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_raw_bytes_with_shape_and_dtype_headers(client, dtype):
    spec = {"method": "normal", "shape": [3, 2, 5], "dtype": dtype, "seed": 11}
    response = client.post("/v1/tensor", params={"format": "raw"}, json=spec)
    assert response.status_code == 200
    assert response.headers["x-initserve-shape"] == "3,2,5"
    assert response.headers["x-initserve-dtype"] == dtype
    assert response.content == expected(spec).tobytes()


@pytest.mark.parametrize("name, key", [("", "weight"), ("encoder.0.weight", "encoder.0.weight")])
def test_safetensors_loads_with_spec_metadata(client, name, key):
    spec = {"method": "kaiming_uniform", "shape": [16, 8, 3], "name": name, "seed": 5}
    response = client.post("/v1/tensor", params={"format": "safetensors"}, json=spec)
    assert response.status_code == 200
    tensors = load_safetensors(response.content)
    assert list(tensors) == [key]
    np.testing.assert_array_equal(tensors[key], expected(spec))
    metadata = safetensors_metadata(response.content)
    assert json.loads(metadata["initserve.spec"]) == resolve(**spec).spec.canonical()
    assert metadata["initserve.algorithm_version"] == ALGORITHM_VERSION


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_safetensors_loads_with_torch(client, dtype):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load as load_torch

    spec = {"method": "orthogonal", "shape": [8, 4], "dtype": dtype}
    response = client.post("/v1/tensor", params={"format": "safetensors"}, json=spec)
    tensor = load_torch(response.content)["weight"]
    assert tensor.dtype == getattr(torch, dtype)
    want = expected(spec)
    got = tensor.view(torch.int16).numpy().view(np.uint16) if dtype == "bfloat16" else tensor.numpy()
    np.testing.assert_array_equal(got, want)


def test_bfloat16_as_npy_is_a_clear_422(client):
    response = client.post("/v1/tensor", json={"method": "normal", "shape": [4], "dtype": "bfloat16"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["field"] == "format" and problem["value"] == "npy"
    assert "bfloat16" in problem["detail"] and "safetensors" in problem["detail"]


@pytest.mark.parametrize("shape, query", [([], ""), ([0, 5], "0,5"), ([4, 0, 3], "4,0,3")])
def test_zero_d_and_empty_tensors(client, shape, query):
    got = client.get("/v1/tensor", params={"method": "normal", "shape": query})
    assert got.status_code == 200
    array = load_npy(got.content)
    assert array.shape == tuple(shape)
    np.testing.assert_array_equal(array, expected({"method": "normal", "shape": shape}))
    as_json = client.get("/v1/tensor", params={"method": "normal", "shape": query, "format": "json"}).json()
    assert as_json["shape"] == shape and len(as_json["data"]) == array.size


def test_seed_and_name_change_the_bytes(client):
    base = {"method": "uniform", "shape": [64]}
    bodies = {
        client.post("/v1/tensor", json={**base, **change}).content
        for change in ({}, {"seed": 1}, {"name": "a"}, {"name": "b"})
    }
    assert len(bodies) == 4


def test_query_parses_bools_ints_and_floats(client):
    query = {"method": "he_normal", "shape": "8,4,3", "truncated": "true", "negative_slope": "0.2", "seed": "9"}
    spec = {"method": "kaiming_normal", "shape": [8, 4, 3], "truncated": True, "negative_slope": 0.2, "seed": 9}
    response = client.get("/v1/tensor", params=query)
    np.testing.assert_array_equal(load_npy(response.content), expected(spec))


def test_zero_rows_get_and_post_agree(client):
    spec = {"method": "normal", "shape": [5, 3], "name": "emb", "zero_rows": [[1, 2], [3, 5]]}
    posted = client.post("/v1/tensor", json=spec)
    fetched = client.get("/v1/tensor", params={"method": "normal", "shape": "5,3", "name": "emb",
                                               "zero_rows": "1:2,3:5"})
    assert posted.status_code == fetched.status_code == 200
    assert posted.content == fetched.content
    values = load_npy(posted.content)
    assert not values[[1, 3, 4]].any() and values[[0, 2]].all()
    assert json.loads(posted.headers["x-initserve-spec"])["zero_rows"] == [[1, 2], [3, 5]]


@pytest.mark.parametrize("fmt", ["npy", "json", "raw", "safetensors"])
def test_int64_tensors_in_every_format(client, fmt):
    response = client.post(f"/v1/tensor?format={fmt}", json={"method": "zeros", "shape": [], "dtype": "int64",
                                                              "name": "num_batches_tracked"})
    assert response.status_code == 200
    if fmt == "npy":
        array = load_npy(response.content)
        assert array.dtype == np.dtype("<i8") and array.shape == () and array == 0
    elif fmt == "json":
        assert response.json()["data"] == [0] and response.json()["dtype"] == "int64"
    elif fmt == "raw":
        assert response.content == bytes(8) and response.headers["x-initserve-dtype"] == "int64"
    else:
        assert load_safetensors(response.content)["num_batches_tracked"].dtype == np.int64
