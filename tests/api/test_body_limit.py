"""Request bodies over their limit are refused with a 413 before the app reads them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from initserve.api import Settings, create_app

from .cases import TestClient, assert_problem
from .model_cases import mlp

LIMITS = Settings(max_json_bytes=4096, max_upload_bytes=1 << 16)
SPEC = {"method": "normal", "shape": [4, 4], "name": "x" * 100}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(LIMITS)) as client:
        yield client


def chunked(data: bytes) -> Iterator[bytes]:
    """``data`` as a body without Content-Length (httpx sends a generator chunked)."""
    for start in range(0, len(data), 1000):
        yield data[start:start + 1000]


@pytest.mark.parametrize("path", ["/v1/tensor", "/v1/model", "/v1/stats"])
def test_a_json_body_over_the_limit_is_refused_by_its_length(client, path):
    body = json.dumps({**SPEC, "pad": " " * 5000}).encode()
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    problem = assert_problem(response, 413, "body", len(body))
    assert "INITSERVE_MAX_JSON_BYTES" in problem["detail"]


def test_a_chunked_json_body_is_refused_once_past_the_limit(client):
    body = json.dumps({**SPEC, "pad": " " * 9000}).encode()
    response = client.post("/v1/tensor", content=chunked(body), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["field"] == "body"
    assert response.json()["value"] > 4096


def test_bodies_within_the_limit_are_served_chunked_or_not(client):
    body = json.dumps(SPEC).encode()
    plain = client.post("/v1/tensor", content=body, headers={"content-type": "application/json"})
    streamed = client.post("/v1/tensor", content=chunked(body), headers={"content-type": "application/json"})
    assert plain.status_code == streamed.status_code == 200 and plain.content == streamed.content
    model = json.dumps(mlp()).encode()
    assert client.post("/v1/model", content=chunked(model), headers={"content-type": "application/json"}
                       ).status_code == 200


def test_uploads_have_their_own_larger_limit(client):
    model = json.dumps(mlp())
    small = client.post("/v1/model", data={"model": model}, files={"checkpoint": ("c.safetensors", b"\0" * 5000)})
    assert small.status_code == 422  # past the JSON limit, within the upload one: read (and found invalid)
    big = client.post("/v1/model", data={"model": model}, files={"checkpoint": ("c.safetensors", b"\0" * 70000)})
    problem = assert_problem(big, 413, "body", int(big.request.headers["content-length"]))
    assert "INITSERVE_MAX_UPLOAD_BYTES" in problem["detail"]
