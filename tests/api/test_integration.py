"""A real ``initserve serve`` process on a free port, spoken to over real HTTP."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors

from initserve.api import Settings, create_app
from initserve.core import ALGORITHM_VERSION, resolve
from initserve.testing import live_server

from .cases import TestClient


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    env = {"INITSERVE_MAX_ELEMENTS": "100000", "INITSERVE_MAX_JSON_ELEMENTS": "1000"}
    with live_server(workers=request.param, env=env) as url:
        yield url


def test_healthz(server):
    response = httpx.get(f"{server}/healthz")
    assert response.json() == {"status": "ok", "algorithm_version": ALGORITHM_VERSION}


def test_tensor_over_http_equals_core(server):
    spec = {"method": "kaiming_uniform", "shape": [64, 32, 3, 3], "seed": 42, "name": "conv1.weight"}
    want = resolve(**spec).region()
    with httpx.Client(base_url=server) as client:
        for _ in range(4):  # several connections may land on different workers: same bytes
            response = client.post("/v1/tensor", json=spec)
            assert response.status_code == 200
            assert int(response.headers["content-length"]) == len(response.content)
            np.testing.assert_array_equal(np.load(io.BytesIO(response.content), allow_pickle=False), want)
        got = client.get(
            "/v1/tensor",
            params={
                "method": "he_uniform",
                "shape": "64,32,3,3",
                "seed": "42",
                "name": "conv1.weight",
                "format": "safetensors",
            },
        )
        np.testing.assert_array_equal(load_safetensors(got.content)["conv1.weight"], want)


def test_environment_limits_apply(server):
    with httpx.Client(base_url=server) as client:
        too_big = client.get("/v1/tensor", params={"method": "normal", "shape": "100001"})
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == "application/problem+json"
        assert (
            client.get("/v1/tensor", params={"method": "normal", "shape": "1001", "format": "json"}).status_code == 413
        )
        assert (
            client.get("/v1/tensor", params={"method": "normal", "shape": "1000", "format": "json"}).status_code == 200
        )
        bad = client.post("/v1/tensor", json={"method": "normal", "shape": [2], "stddev": 1})
        assert bad.status_code == 422 and bad.json()["field"] == "stddev"


def test_model_over_http_equals_in_process(server):
    model = {
        "layers": [
            {"type": "conv2d", "in_channels": 3, "out_channels": 16, "kernel_size": [3]},
            {"type": "batch_norm2d", "num_features": 16},
            {"type": "linear", "in_features": 64, "out_features": 10, "nonlinearity": "relu"},
        ],
        "scheme": "he",
        "seed": 7,
    }
    with TestClient(create_app(Settings())) as local:
        want = local.post("/v1/model", json=model)
    assert want.status_code == 200
    with httpx.Client(base_url=server) as client:
        for _ in range(2):  # possibly different workers: same bytes
            response = client.post("/v1/model", json=model)
            assert response.status_code == 200, response.text
            assert int(response.headers["content-length"]) == len(response.content)
            assert response.content == want.content
            assert response.headers["etag"] == want.headers["etag"]
    tensors = load_safetensors(response.content)
    assert tensors["0.weight"].shape == (16, 3, 3, 3) and tensors["1.num_batches_tracked"].dtype == np.int64
