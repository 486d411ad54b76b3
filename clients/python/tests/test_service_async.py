"""The async client against the service in-process (httpx.ASGITransport), and its parity with the sync one."""

from __future__ import annotations

import inspect
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from client_cases import LAYERS, SPECS

from initserve_client import AsyncClient, Client, TensorSpec
from initserve_client.errors import InvalidRequest, InvalidSpec

core = pytest.importorskip("initserve.core", reason="the initserve service package (reference values)")

pytestmark = pytest.mark.anyio


def public_methods(cls: type) -> dict[str, Any]:
    return {name: member for name, member in vars(cls).items() if callable(member) and not name.startswith("_")}


def test_same_methods_and_signatures_as_the_sync_client() -> None:
    sync, asynchronous = public_methods(Client), public_methods(AsyncClient)
    assert set(sync) - {"close"} == set(asynchronous) - {"aclose"}
    for name, method in sync.items():
        if name == "close":
            continue
        assert inspect.iscoroutinefunction(asynchronous[name]), name
        assert inspect.signature(asynchronous[name]).parameters == inspect.signature(method).parameters, name
    init = inspect.signature(AsyncClient.__init__).parameters
    assert list(init) == list(inspect.signature(Client.__init__).parameters)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: str(spec["method"]))
async def test_tensor_equals_the_core(aclient: AsyncClient, spec: dict[str, Any]) -> None:
    params = dict(spec)
    method, shape = params.pop("method"), params.pop("shape")
    got = await aclient.tensor(method, shape, **params)
    assert got.tobytes() == np.asarray(core.resolve(**spec).region()).tobytes()


async def test_every_endpoint(aclient: AsyncClient, tmp_path: Path) -> None:
    spec = TensorSpec("normal", (4, 4), params={"std": 0.02}, dtype="bfloat16", seed=2)
    got = await aclient.tensor(spec)
    assert got.view(np.uint16).tobytes() == core.resolve("normal", [4, 4], std=0.02, dtype="bfloat16",
                                                         seed=2).region().tobytes()
    weights = await aclient.model(LAYERS, scheme="he", seed=3)
    manifest = await aclient.manifest(LAYERS, scheme="he", seed=3)
    assert list(weights) == [tensor["name"] for tensor in manifest["tensors"]]
    path = await aclient.download_model(LAYERS, tmp_path / "m.safetensors", scheme="he", seed=3)
    data = path.read_bytes()
    (length,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8 : 8 + length])
    for name, array in weights.items():
        start, end = header[name]["data_offsets"]
        assert array.tobytes() == data[8 + length + start : 8 + length + end]
    npy = await aclient.download_tensor("ones", [3], tmp_path / "ones.npy")
    assert (np.load(npy) == 1).all()
    assert (await aclient.stats("orthogonal", [8, 8]))["tensors"][0]["checks"][0]["passed"]
    assert (await aclient.stats(layers=LAYERS[2:]))["tensors"][0]["name"] == "fc1.weight"
    layers = [{"type": "linear", "in_features": 16, "out_features": 16, "nonlinearity": "relu"}]
    assert len((await aclient.propagation(layers, scheme="he", batch_size=8))["layers"]) == 1
    assert len(await aclient.methods()) == 18
    assert await aclient.gain("tanh") == pytest.approx(5 / 3)
    assert (await aclient.fans([8, 4]))["fan_in"] == 4


async def test_errors(aclient: AsyncClient) -> None:
    with pytest.raises(InvalidSpec):
        await aclient.tensor("normal", [2], stddev=1.0)  # type: ignore[call-arg]
    with pytest.raises(InvalidRequest) as error:
        await aclient.tensor("uniform", [2], low=1.0, high=0.0)
    assert error.value.status == 422 and error.value.field in ("low", "high")
