"""``slice`` and ``shard`` on /v1/tensor and /v1/model: every answer is the same part of the whole answer."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors

from .cases import load_npy
from .model_cases import assert_model_problem, header_of, linear, load_npz, mlp, post_model, read_tensors

SPECS: list[dict[str, Any]] = [
    {"method": "normal", "shape": [12, 10], "std": 0.5, "seed": 3},
    {"method": "orthogonal", "shape": [12, 10], "seed": 1},
    {"method": "sparse", "shape": [12, 10], "sparsity": 0.5},
    {"method": "kaiming_uniform", "shape": [12, 3, 4, 5], "layout": "keras", "name": "k"},
    {"method": "delta_orthogonal", "shape": [12, 6, 3]},
]
# (POST fields, the same as GET query parameters)
WINDOWS: list[tuple[dict[str, Any], dict[str, str]]] = [
    ({"slice": [[2, 9]]}, {"slice": "2:9"}),
    ({"slice": [[0, 3], [1, 3]]}, {"slice": "0:3,1:3"}),
    ({"shard": {"dim": 1, "index": 1, "count": 4}}, {"shard": "1:1:4"}),
    ({"shard": {"dim": -1, "index": 0, "count": 2}}, {"shard": "-1:0:2"}),
    ({"slice": [[1, 11]], "shard": {"dim": 0, "index": 0, "count": 3}}, {"slice": "1:11", "shard": "0:0:3"}),
]
FORMATS = ("npy", "safetensors", "json", "raw")


def query(spec: dict[str, Any]) -> dict[str, str]:
    return {k: ",".join(map(str, v)) if k == "shape" else str(v) for k, v in spec.items()}


def decode(response: Any, fmt: str) -> np.ndarray:
    if fmt == "npy":
        return load_npy(response.content)
    if fmt == "safetensors":
        return next(iter(load_safetensors(response.content).values()))
    if fmt == "json":
        body = response.json()
        return np.asarray(body["data"], dtype=np.float32).reshape(body["shape"])
    shape = json.loads(response.headers["x-initserve-shape"]) if response.headers["x-initserve-shape"].startswith(
        "[") else [int(n) for n in response.headers["x-initserve-shape"].split(",") if n]
    return np.frombuffer(response.content, "<f4").reshape(shape)


def expected_box(shape: list[int], post: dict[str, Any]) -> list[list[int]]:
    box = [[0, n] for n in shape]
    for axis, pair in enumerate(post.get("slice", [])):
        box[axis] = list(pair)
    shard = post.get("shard")
    if shard:  # np.array_split has torch.tensor_split's boundaries
        dim = shard["dim"] % len(shape)
        part = np.array_split(np.arange(*box[dim]), shard["count"])[shard["index"]]
        box[dim] = [int(part[0]), int(part[-1]) + 1] if part.size else [box[dim][0]] * 2
    return box


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s["method"])
@pytest.mark.parametrize("post,get", WINDOWS)
def test_windows_are_slices_of_the_whole_answer(client, spec, post, get):
    box = expected_box(spec["shape"], post)
    for fmt in FORMATS:
        whole = decode(client.post("/v1/tensor", params={"format": fmt}, json=spec), fmt)
        want = whole[tuple(slice(a, b) for a, b in box)]
        posted = client.post("/v1/tensor", params={"format": fmt}, json={**spec, **post})
        got = client.get("/v1/tensor", params={**query(spec), **get, "format": fmt})
        assert posted.status_code == got.status_code == 200, (posted.text, got.text)
        assert posted.content == got.content and posted.headers["etag"] == got.headers["etag"]
        assert json.loads(posted.headers["x-initserve-window"]) == {"box": box}
        assert " " not in posted.headers["x-initserve-window"]
        part = decode(posted, fmt)
        assert part.shape == want.shape and np.array_equal(part, want), fmt


def test_safetensors_metadata_and_spec_header_of_a_window(client):
    spec = {"method": "normal", "shape": [8, 4], "slice": [[2, 6]]}
    response = client.post("/v1/tensor", params={"format": "safetensors"}, json=spec)
    header, _ = header_of(response.content)
    assert json.loads(header["__metadata__"]["initserve.window"]) == {"box": [[2, 6], [0, 4]]}
    assert header["weight"]["shape"] == [4, 4]
    assert json.loads(response.headers["x-initserve-spec"])["shape"] == [8, 4]  # the whole tensor's spec


def test_etag_differs_per_window_and_is_stable(client):
    spec = {"method": "normal", "shape": [8, 4]}
    tags = [client.post("/v1/tensor", json={**spec, "shard": {"dim": 0, "index": i, "count": 4}}).headers["etag"]
            for i in range(4)]
    whole = client.post("/v1/tensor", json=spec).headers["etag"]
    assert len({*tags, whole}) == 5
    again = client.post("/v1/tensor", json={**spec, "shard": {"dim": 0, "index": 2, "count": 4}})
    assert again.headers["etag"] == tags[2]
    assert "x-initserve-window" not in client.post("/v1/tensor", json=spec).headers
    cached = client.get("/v1/tensor", params={"method": "normal", "shape": "8,4", "shard": "0:2:4"},
                        headers={"If-None-Match": tags[2]})
    assert cached.status_code == 304


def test_range_on_a_windowed_answer_is_the_slice_of_it(client):
    spec = {"method": "normal", "shape": [64, 32], "slice": [[5, 40], [3, 30]]}
    full = client.post("/v1/tensor", params={"format": "raw"}, json=spec)
    for header, (start, stop) in [("bytes=0-99", (0, 100)), ("bytes=1000-", (1000, len(full.content))),
                                  ("bytes=-37", (len(full.content) - 37, len(full.content)))]:
        part = client.post("/v1/tensor", params={"format": "raw"}, json=spec, headers={"Range": header})
        assert part.status_code == 206
        assert part.content == full.content[start:stop]
        assert part.headers["content-range"] == f"bytes {start}-{stop - 1}/{len(full.content)}"


def test_limits_count_the_window(client):
    # SMALL: 2^16 elements, 2^10 in json: a window of a bigger element-wise tensor is served.
    spec = {"method": "normal", "shape": [1024, 1024], "shard": {"dim": 0, "index": 5, "count": 64}}
    assert client.post("/v1/tensor", json=spec).status_code == 200
    assert client.post("/v1/tensor", params={"format": "json"}, json=spec).status_code == 413
    # whole-matrix methods are still held to the dense side of the whole tensor
    dense = {"method": "orthogonal", "shape": [128, 8], "slice": [[0, 4]]}
    assert client.post("/v1/tensor", json=dense).status_code == 413


@pytest.mark.parametrize("fields,field", [
    ({"slice": [[0, 9]]}, "slice"),
    ({"slice": [[3, 2]]}, "slice"),
    ({"slice": [[0, 1], [0, 1], [0, 1]]}, "slice"),
    ({"shard": {"dim": 2, "index": 0, "count": 1}}, "shard.dim"),
    ({"shard": {"dim": 0, "index": 3, "count": 3}}, "shard.index"),
    ({"shard": {"dim": 0, "index": 0, "count": 0}}, "shard.count"),
])
def test_bad_windows_are_422_naming_the_field(client, fields, field):
    spec = {"method": "normal", "shape": [8, 4]}
    response = client.post("/v1/tensor", json={**spec, **fields})
    assert response.status_code == 422 and response.json()["field"] == field, response.text


@pytest.mark.parametrize("params,field", [
    ({"slice": "0:9"}, "slice"), ({"slice": "a:2"}, "slice"), ({"shard": "0:1"}, "shard"),
    ({"shard": "0:x:4"}, "shard"), ({"shard": "0:4:4"}, "shard.index"), ({"shard": "5:0:2"}, "shard.dim"),
])
def test_bad_get_windows_are_422_naming_the_field(client, params, field):
    response = client.get("/v1/tensor", params={"method": "normal", "shape": "8,4", **params})
    assert response.status_code == 422, response.text
    assert response.json()["field"].startswith(field), response.json()


@pytest.mark.parametrize(("body", "field"), [
    ({"method": "normal", "shape": [8, 4], "slice": [[0, 2]]}, "slice"),
    ({"method": "normal", "shape": [8, 4], "shard": {"dim": 0, "index": 0, "count": 2}}, "shard"),
    ({"layers": [{"type": "linear", "in_features": 4, "out_features": 2}], "slices": {"weight": [[0, 1]]}}, "slices"),
    ({"layers": [{"type": "linear", "in_features": 4, "out_features": 2}],
      "shards": {"weight": {"dim": 0, "index": 0, "count": 2}}}, "shards"),
])
def test_stats_describes_whole_tensors_and_its_schema_has_no_windows(client, body, field):
    response = client.post("/v1/stats", json=body)
    assert response.status_code == 422 and response.json()["field"] == field, response.text
    assert "unknown field" in response.json()["detail"]
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert field not in schemas["NormalWholeSpec"]["properties"] and field not in schemas["ModelSpec"]["properties"]
    assert field in {**schemas["NormalSpec"]["properties"], **schemas["ModelRequest"]["properties"]}


# --- /v1/model --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "json"])
@pytest.mark.parametrize("framework", ["torch", "keras", "flax"])
def test_model_shards_concatenate_to_the_whole_model(client, fmt, framework):
    def tensors(body: dict[str, Any]) -> dict[str, np.ndarray]:
        response = post_model(client, body, format=fmt)
        assert response.status_code == 200, response.text
        if fmt == "safetensors":
            return read_tensors(response.content)
        if fmt == "npz":
            return load_npz(response.content)
        return {t["name"]: np.asarray(t["data"], np.float32).reshape(t["shape"]) for t in response.json()["tensors"]}

    request = {"layers": [linear(4, 8), linear(8, 3)], "framework": framework, "scheme": "orthogonal", "seed": 4}
    whole = tensors(request)
    count = 3
    for dim in (0, -1):
        parts = [tensors({**request, "shards": {name: {"dim": dim, "index": index, "count": count}
                                                for name in whole}}) for index in range(count)]
        for name, values in whole.items():
            joined = np.concatenate([p[name] for p in parts], axis=dim)
            assert np.array_equal(joined, values), (name, dim)


def test_model_manifest_reports_windows_and_their_digests(client):
    request = {**mlp(seed=2), "slices": {"0.weight": [[10, 40], [2, 7]]},
               "shards": {"1.bias": {"dim": 0, "index": 1, "count": 2}}}
    content = post_model(client, request).content
    document = post_model(client, request, format="manifest").json()
    header, start = header_of(content)
    assert document["safetensors_length"] == len(content) and document["header_length"] == start
    entries = {entry["name"]: entry for entry in document["tensors"]}
    assert entries["0.weight"]["window"] == [[10, 40], [2, 7]] and entries["0.weight"]["shape"] == [30, 5]
    assert entries["1.bias"]["window"] == [[16, 32]] and entries["1.bias"]["shape"] == [16]
    assert entries["0.bias"]["window"] is None
    for name, entry in entries.items():
        data = content[slice(*entry["byte_range"])]
        assert header[name]["shape"] == entry["shape"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
    whole = read_tensors(post_model(client, mlp(seed=2)).content)
    assert np.array_equal(read_tensors(content)["0.weight"], whole["0.weight"][10:40, 2:7])


@pytest.mark.parametrize("fields,field", [
    ({"slices": {"nope": [[0, 1]]}}, "slices.nope"),
    ({"shards": {"nope": {"dim": 0, "index": 0, "count": 1}}}, "shards.nope"),
    ({"slices": {"0.weight": [[0, 65]]}}, "slices.0.weight"),
    ({"shards": {"0.bias": {"dim": 1, "index": 0, "count": 2}}}, "shards.0.bias.dim"),
])
def test_model_bad_windows_are_422(client, fields, field):
    assert_model_problem(post_model(client, {**mlp(), **fields}), 422, field)


@pytest.mark.parametrize("window", [{"slice": []}, {"slice": [[0, 12], [0, 10]]},
                                    {"shard": {"dim": 0, "index": 0, "count": 1}}], ids=["empty", "full", "one-part"])
def test_a_window_over_the_whole_tensor_is_no_window(client, window):
    spec = {"method": "normal", "shape": [12, 10], "seed": 3}
    plain = client.post("/v1/tensor", json=spec, params={"format": "safetensors"})
    whole = client.post("/v1/tensor", json={**spec, **window}, params={"format": "safetensors"})
    assert whole.content == plain.content and "x-initserve-window" not in whole.headers
    assert (whole.headers["etag"], whole.headers["content-location"]) == \
        (plain.headers["etag"], plain.headers["content-location"])


@pytest.mark.parametrize("field", ["slices", "shards"])
def test_empty_model_windows_change_no_byte(client, field):
    plain = post_model(client, mlp())
    empty = post_model(client, {**mlp(), field: {}})
    assert empty.content == plain.content and empty.headers["etag"] == plain.headers["etag"]


def test_stats_names_model_windows_as_json(client):
    body = {**mlp(), "shards": {"0.weight": {"dim": 0, "index": 0, "count": 2}}}
    problem = assert_model_problem(client.post("/v1/stats", json=body), 422, "shards")
    assert problem["value"] == {"0.weight": {"dim": 0, "index": 0, "count": 2}}
