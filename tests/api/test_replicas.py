"""Separate server processes answer the same bytes: worker processes of one server, and replicas whose
numpy and libm run other SIMD kernels (``NPY_DISABLE_CPU_FEATURES``, ``GLIBC_TUNABLES``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from initserve.testing import CPU_FEATURE_SETTINGS, live_server

from .cases import SPECS, spec_id
from .model_cases import mlp

ENV = {"INITSERVE_MAX_DENSE_SIDE": "256"}
MODEL = {**mlp(), "layers": [*mlp()["layers"], {"type": "conv2d", "in_channels": 3, "out_channels": 8,
                                                "kernel_size": 3}, {"type": "embedding", "num_embeddings": 50,
                                                                    "embedding_dim": 16, "padding_idx": 0}]}


def grown(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with more elements, so several generation blocks and BLAS-sized products are involved."""
    channels = {0, 1} if spec.get("layout", "torch") == "torch" else {len(spec["shape"]) - 2, len(spec["shape"]) - 1}
    shape = [n * 16 if axis in channels else n for axis, n in enumerate(spec["shape"])]
    return {**spec, "shape": shape, "seed": 11}


def digests(url: str) -> dict[str, str]:
    """SHA-256 of each method's tensor (every format) and of a model, each over a new connection."""
    found: dict[str, str] = {}
    for spec in SPECS:
        for fmt in ("raw", "safetensors"):
            with httpx.Client(base_url=url, timeout=60) as client:  # a new connection: maybe another worker
                response = client.post("/v1/tensor", json=grown(spec), params={"format": fmt})
            assert response.status_code == 200, response.text
            found[f"{spec_id(spec)}/{fmt}"] = hashlib.sha256(response.content).hexdigest()
    with httpx.Client(base_url=url, timeout=60) as client:
        for fmt in ("safetensors", "manifest"):
            found[f"model/{fmt}"] = hashlib.sha256(client.post("/v1/model", json=MODEL,
                                                               params={"format": fmt}).content).hexdigest()
    return found


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """A 2-worker server with the default environment and one 1-worker replica per CPU-feature setting."""
    with ExitStack() as stack:
        urls = {"2 workers": stack.enter_context(live_server(workers=2, env=ENV))}
        for setting, env in CPU_FEATURE_SETTINGS.items():
            if env:
                urls[setting] = stack.enter_context(live_server(env={**ENV, **env}))
        yield urls


def test_workers_and_replicas_under_other_cpu_features_serve_identical_bytes(servers):
    reference = digests(servers["2 workers"])
    assert len(set(reference.values())) > 30  # distinct answers, not one repeated error
    assert digests(servers["2 workers"]) == reference  # again, over other connections
    for setting, url in servers.items():
        assert digests(url) == reference, setting
