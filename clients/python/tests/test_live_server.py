"""Both clients against a real ``initserve serve`` process over TCP: a tensor, a verified model, downloads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from client_cases import LAYERS

from initserve_client import AsyncClient, Client

core = pytest.importorskip("initserve.core", reason="the initserve service package (reference values)")

SPEC = {"method": "kaiming_uniform", "shape": [64, 32, 3, 3], "seed": 42, "name": "conv1.weight"}


def check_file_against_manifest(path: Path, manifest: dict[str, object]) -> None:
    data = path.read_bytes()
    tensors = manifest["tensors"]
    assert isinstance(tensors, list) and len(data) == manifest["safetensors_length"]
    for tensor in tensors:
        start, end = tensor["byte_range"]
        assert hashlib.sha256(data[start:end]).hexdigest() == tensor["sha256"]


def test_sync_client(server: str, tmp_path: Path) -> None:
    with Client(server, timeout=30, progress=False) as client:
        got = client.tensor("he_uniform", [64, 32, 3, 3], seed=42, name="conv1.weight")
        assert got.tobytes() == core.resolve(**SPEC).region().tobytes()
        weights = client.model(LAYERS, scheme="he", seed=7, verify=True)
        manifest = client.manifest(LAYERS, scheme="he", seed=7)
        assert list(weights) == [tensor["name"] for tensor in manifest["tensors"]]
        path = client.download_model(LAYERS, tmp_path / "model.safetensors", scheme="he", seed=7)
        check_file_against_manifest(path, manifest)
        npy = client.download_tensor("kaiming_uniform", [64, 32, 3, 3], tmp_path / "w.npy", seed=42,
                                     name="conv1.weight")
        assert np.load(npy).tobytes() == got.tobytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "w.npy"]


@pytest.mark.anyio
async def test_async_client(server: str, tmp_path: Path) -> None:
    async with AsyncClient(server, timeout=30, progress=False) as client:
        got = await client.tensor("kaiming_uniform", [64, 32, 3, 3], seed=42, name="conv1.weight")
        assert got.tobytes() == core.resolve(**SPEC).region().tobytes()
        weights = await client.model(LAYERS, framework="torch", scheme="xavier", seed=1, verify=True)
        manifest = await client.manifest(LAYERS, scheme="xavier", seed=1)
        assert list(weights) == [tensor["name"] for tensor in manifest["tensors"]]
        path = await client.download_model(LAYERS, tmp_path / "model.safetensors", scheme="xavier", seed=1)
        check_file_against_manifest(path, manifest)
        assert (await client.fans([64, 32, 3, 3]))["fan_in"] == 288


def test_windows_over_tcp(server: str, tmp_path: Path) -> None:
    whole = core.resolve(**SPEC).region()
    with Client(server, timeout=30, progress=False) as client:
        parts = [client.tensor("kaiming_uniform", [64, 32, 3, 3], seed=42, name="conv1.weight",
                               shard={"dim": 1, "index": rank, "count": 3}) for rank in range(3)]
        assert np.concatenate(parts, axis=1).tobytes() == whole.tobytes()
        box = client.tensor("kaiming_uniform", [64, 32, 3, 3], seed=42, name="conv1.weight", slice=[(10, 20), (5, 6)])
        assert box.tobytes() == np.ascontiguousarray(whole[10:20, 5:6]).tobytes()
        shards = {"conv.weight": {"dim": 0, "index": 1, "count": 2}, "fc2.weight": {"dim": 1, "index": 0, "count": 2}}
        weights = client.model(LAYERS, seed=3, shards=shards, verify=True)
        manifest = client.manifest(LAYERS, seed=3, shards=shards)
        assert weights["conv.weight"].shape == (2, 3, 3, 3) and weights["fc2.weight"].shape == (2, 4)
        path = client.download_model(LAYERS, tmp_path / "part.safetensors", seed=3, shards=shards)
        check_file_against_manifest(path, manifest)
