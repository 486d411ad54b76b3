"""The canonical GET URL: one per (spec, format, window), read back as the same answer; manifest URLs."""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import struct
import subprocess
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from initserve.api.query import canonical_query, format_number
from initserve.core import ALGORITHM_VERSION

from .cases import SPECS, assert_problem, load_npy, query_of, spec_id
from .model_cases import mlp, post_model

FORMATS = ("npy", "safetensors", "raw", "json")


def location(response: Any) -> str:
    assert response.status_code in (200, 206), response.text
    url: str = response.headers["content-location"]
    assert url.startswith("/v1/tensor?")
    return url


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_the_canonical_url_answers_the_same_bytes_and_is_a_fixed_point(client, spec):
    posted = client.post("/v1/tensor", json=spec, params={"format": "raw"})
    url = location(posted)
    fetched = client.get(url)
    assert fetched.content == posted.content
    assert fetched.headers["etag"] == posted.headers["etag"]
    assert location(fetched) == url  # already canonical: nothing left to normalise
    assert location(client.get("/v1/tensor", params={**query_of(spec), "format": "raw"})) == url


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_has_its_own_canonical_url(client, fmt):
    spec = {"method": "normal", "shape": [4, 3], "std": 0.02, "seed": 5}
    url = location(client.post("/v1/tensor", json=spec, params={"format": fmt}))
    assert dict(parse_qsl(urlsplit(url).query))["format"] == fmt
    assert client.get(url).content == client.post("/v1/tensor", json=spec, params={"format": fmt}).content


def test_spellings_of_one_request_share_one_url(client):
    spellings = [
        {"method": "kaiming_normal", "shape": [8, 4]},
        {"method": "he_normal", "shape": [8, 4], "mode": "fan_in"},  # alias, a default given explicitly
        {"shape": [8, 4], "seed": 0, "nonlinearity": "leaky_relu", "method": "kaiming_normal", "dtype": "float32"},
    ]
    urls = {location(client.post("/v1/tensor", json=spec)) for spec in spellings}
    urls.add(location(client.get("/v1/tensor?shape=8,4&method=he_normal&negative_slope=0")))
    assert len(urls) == 1
    assert urls.pop() == ("/v1/tensor?algorithm_version=2&dtype=float32&format=npy&layout=torch"
                          "&method=kaiming_normal&mode=fan_in&name=&negative_slope=0&nonlinearity=leaky_relu&seed=0"
                          "&shape=8,4&truncated=false")


def test_a_shard_and_its_slice_share_one_url(client):
    spec = {"method": "orthogonal", "shape": [10, 6], "seed": 3}
    by_shard = client.post("/v1/tensor", json={**spec, "shard": {"dim": 0, "index": 2, "count": 3}})
    by_slice = client.post("/v1/tensor", json={**spec, "slice": [[7, 10]]})
    url = location(by_shard)
    assert url == location(by_slice) and url.endswith("&slice=7:10,0:6")
    assert client.get(url).content == by_shard.content == by_slice.content
    assert load_npy(by_shard.content).shape == (3, 6)


def test_ranges_and_not_modified_answers_carry_the_url(client):
    url = location(client.post("/v1/tensor", json={"method": "uniform", "shape": [64]}, params={"format": "raw"}))
    partial = client.get(url, headers={"Range": "bytes=0-15"})
    assert partial.status_code == 206 and partial.headers["content-location"] == url
    unchanged = client.get(url, headers={"If-None-Match": partial.headers["etag"]})
    assert unchanged.status_code == 304 and unchanged.headers["content-location"] == url


def test_names_and_zero_rows_are_percent_encoded_and_read_back(client):
    spec = {"method": "normal", "shape": [5, 2], "name": "blocks.0/attn & ünïcode=1", "zero_rows": [[1, 3]]}
    url = location(client.post("/v1/tensor", json=spec))
    assert url.isascii() and "name=blocks.0%2Fattn%20%26%20%C3%BCn%C3%AFcode%3D1" in url
    assert "zero_rows=1:3" in url
    answered = load_npy(client.get(url).content)
    assert (answered[1:3] == 0).all() and answered.shape == (5, 2)
    assert json.loads(client.get(url).headers["x-initserve-spec"])["name"] == spec["name"]


def test_canonical_query_sorts_flattens_and_writes_windows():
    canonical = {"method": "normal", "params": {"std": 0.02, "mean": -0.0}, "shape": [], "dtype": "float16",
                 "layout": "torch", "seed": 2**64 - 1, "name": ""}
    assert canonical_query(canonical, "raw", ((0, 1), (2, 3)), "7") == (
        "algorithm_version=7&dtype=float16&format=raw&layout=torch&mean=-0&method=normal&name=&seed=18446744073709551615"
        "&shape=&slice=0:1,2:3&std=0.02")


def test_urls_name_the_algorithm_version_and_other_versions_are_refused(client):
    url = location(client.post("/v1/tensor", json={"method": "normal", "shape": [3]}))
    assert url.startswith(f"/v1/tensor?algorithm_version={ALGORITHM_VERSION}&")
    other = url.replace(f"algorithm_version={ALGORITHM_VERSION}", "algorithm_version=0")
    assert_problem(client.get(other), 422, "algorithm_version", "0")
    previous = url.replace(f"algorithm_version={ALGORITHM_VERSION}", "algorithm_version=1")  # orthogonal changed in 2
    assert_problem(client.get(previous), 422, "algorithm_version", "1")
    assert_problem(client.post("/v1/tensor?algorithm_version=0", json={"method": "normal", "shape": [3]}), 422,
                   "algorithm_version", "0")
    assert client.post(f"/v1/tensor?algorithm_version={ALGORITHM_VERSION}",
                       json={"method": "normal", "shape": [3]}).status_code == 200


def test_numbers_are_written_as_ecmascript_writes_them():
    cases = {0.02: "0.02", 2.0: "2", 1e-7: "1e-7", 1e-6: "0.000001", 1.5e22: "1.5e+22", 1e21: "1e+21",
             123456789012345680000.0: "123456789012345680000", -2.5: "-2.5", 5e-324: "5e-324", -0.0: "-0"}
    assert {value: format_number(value) for value in cases} == cases


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_numbers_match_javascript_string():
    rng = random.Random(6)
    values = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(2000)]
    values += [round(rng.uniform(-1e3, 1e3), rng.randint(0, 8)) for _ in range(2000)]
    values = [v for v in values if math.isfinite(v) and v != 0]
    script = "const v = JSON.parse(require('fs').readFileSync(0, 'utf8')); console.log(JSON.stringify(v.map(String)))"
    written = subprocess.run(["node", "-e", script], input=json.dumps(values), capture_output=True, text=True,
                             check=True).stdout
    assert [format_number(v) for v in values] == json.loads(written)


def test_manifest_urls_answer_the_manifest_digests(client):
    body = {**mlp(), "shards": {"0.weight": {"dim": 0, "index": 1, "count": 2}}, "slices": {"1.bias": [[3, 9]]}}
    manifest = post_model(client, body, format="manifest").json()
    for entry in manifest["tensors"]:
        answer = client.get(entry["url"])
        assert dict(parse_qsl(urlsplit(entry["url"]).query))["format"] == "raw"
        assert hashlib.sha256(answer.content).hexdigest() == entry["sha256"], entry["name"]
        assert [int(n) for n in answer.headers["x-initserve-shape"].split(",")] == entry["shape"]


def test_windows_of_reshaped_flax_kernels_have_no_url(client):
    body = {"framework": "flax", "layers": [{"type": "multihead_attention", "embed_dim": 8, "num_heads": 2}]}
    kernel = "params/MultiHeadDotProductAttention_0/query/kernel"  # [8, 2, 4]: a view of an [8, 8] tensor
    whole = {e["name"]: e for e in post_model(client, body, format="manifest").json()["tensors"]}
    assert hashlib.sha256(client.get(whole[kernel]["url"]).content).hexdigest() == whole[kernel]["sha256"]
    sharded = post_model(client, {**body, "shards": {kernel: {"dim": 0, "index": 0, "count": 2}}}, format="manifest")
    entry = next(e for e in sharded.json()["tensors"] if e["name"] == kernel)
    assert entry["window"] == [[0, 4], [0, 2], [0, 4]] and entry["url"] is None
