"""Windows (``slice`` and ``shard``) of tensors and models, against the service in-process.

Shards concatenate to the whole tensor (an element-wise method, and whole-matrix ones), slices equal numpy
slices, model windows verify against the manifest of the same windows (a tampered digest is refused), the
answer's box is checked against the one asked for, and invalid windows are refused before anything is sent.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from client_cases import LAYERS

from initserve_client import AsyncClient, Client, TensorSpec
from initserve_client.errors import IntegrityError, InvalidRequest, InvalidSpec

pytest.importorskip("initserve.api", reason="the initserve service package")

MLP = [{"type": "linear", "in_features": 12, "out_features": 10, "name": "fc1"},
       {"type": "linear", "in_features": 10, "out_features": 7, "name": "fc2"}]

TENSOR_SPECS = [
    {"method": "kaiming_uniform", "shape": [7, 5, 3], "seed": 3, "name": "conv.weight"},  # element-wise
    {"method": "normal", "shape": [10, 6], "std": 0.5, "dtype": "bfloat16"},
    {"method": "orthogonal", "shape": [9, 6], "gain": 2.0},  # builds the whole matrix
    {"method": "sparse", "shape": [8, 5], "sparsity": 0.5},
]


def split(spec: dict[str, Any]) -> tuple[str, list[int], dict[str, Any]]:
    rest = dict(spec)
    return rest.pop("method"), rest.pop("shape"), rest


def shard_bounds(n: int, count: int) -> list[tuple[int, int]]:
    """Bounds of the parts of ``np.array_split`` (the same as ``torch.tensor_split``)."""
    sizes = [len(part) for part in np.array_split(np.arange(n), count)]
    ends = np.cumsum([0, *sizes])
    return [(int(a), int(b)) for a, b in itertools.pairwise(ends)]


@pytest.mark.parametrize("spec", TENSOR_SPECS, ids=lambda spec: str(spec["method"]))
def test_tensor_shards_concatenate_to_the_whole_tensor(client: Client, spec: dict[str, Any]) -> None:
    method, shape, params = split(spec)
    whole = client.tensor(method, shape, **params)
    for dim in range(len(shape)):
        for count in (1, 2, 3, shape[dim] + 2):  # uneven parts, and empty ones past the end
            parts = [client.tensor(method, shape, shard={"dim": dim, "index": index, "count": count}, **params)
                     for index in range(count)]
            assert [part.shape[dim] for part in parts] == [b - a for a, b in shard_bounds(shape[dim], count)]
            assert np.concatenate(parts, axis=dim).tobytes() == whole.tobytes(), (dim, count)
    last = client.tensor(method, shape, shard=(-1, 1, 2), **params)  # the tuple form, dim from the end
    assert last.tobytes() == np.ascontiguousarray(np.array_split(whole, 2, axis=-1)[1]).tobytes()


def test_slice_equals_the_numpy_slice(client: Client) -> None:
    whole = client.tensor("he_normal", [12, 6, 3], seed=4)
    for box in ([(2, 9)], [(0, 12), (1, 4)], [(3, 3), (0, 6)], [(5, 7), (2, 6), (1, 3)], []):
        got = client.tensor("he_normal", [12, 6, 3], slice=box, seed=4)
        want = whole[tuple(np.s_[a:b] for a, b in box)]
        assert got.shape == want.shape and got.tobytes() == np.ascontiguousarray(want).tobytes(), box
    spec = TensorSpec("he_normal", (12, 6, 3), seed=4)
    within = client.tensor(spec, slice=np.array([[2, 10]]), shard={"dim": 1, "index": 2, "count": 4})
    assert within.tobytes() == np.ascontiguousarray(np.array_split(whole[2:10], 4, axis=1)[2]).tobytes()
    scalar = client.tensor("constant", [], value=1.5, slice=[])
    assert scalar.shape == () and float(scalar) == 1.5


@pytest.mark.parametrize("fmt", ["npy", "json", "raw", "safetensors"])
def test_download_tensor_window(client: Client, tmp_path: Path, fmt: str) -> None:
    part = client.tensor("xavier_uniform", [8, 6], seed=2, shard={"dim": 0, "index": 1, "count": 3})
    path = client.download_tensor("xavier_uniform", [8, 6], tmp_path / f"w.{fmt}", format=fmt, seed=2,
                                  shard={"dim": 0, "index": 1, "count": 3})
    data = path.read_bytes()
    if fmt == "npy":
        assert np.load(path).tobytes() == part.tobytes()
    elif fmt == "json":
        document = json.loads(data)
        assert document["shape"] == [3, 6] and np.asarray(document["data"], np.float32).tobytes() == part.tobytes()
    else:
        assert data.endswith(part.tobytes())


def test_tensor_window_refused_by_the_service(client: Client) -> None:
    with pytest.raises(InvalidRequest) as error:
        client.tensor("normal", [4, 4], slice=[(0, 5)])
    assert error.value.status == 422 and error.value.field == "slice"
    with pytest.raises(InvalidRequest) as error:
        client.tensor("normal", [4, 4], shard={"dim": 2, "index": 0, "count": 2})
    assert error.value.field == "shard.dim"


def test_a_wrong_window_in_the_answer_is_refused(sync_transport: httpx.BaseTransport) -> None:
    def other_box(request: httpx.Request) -> httpx.Response:
        response = sync_transport.handle_request(request)
        headers = dict(response.headers) | {"x-initserve-window": '{"box":[[0,2],[0,4]]}'}
        return httpx.Response(response.status_code, headers=headers, content=response.read())

    with Client("http://initserve.test", transport=httpx.MockTransport(other_box), progress=False) as client:
        assert client.tensor("normal", [4, 4], shard=(0, 0, 2)).shape == (2, 4)  # the box it asked for
        with pytest.raises(IntegrityError, match="window"):
            client.tensor("normal", [4, 4], shard=(0, 1, 2))  # same shape, another box


# --- models ------------------------------------------------------------------------------------------------


def tensor_parallel(index: int, count: int) -> dict[str, dict[str, int]]:
    """Megatron-style: fc1 split by output rows, fc2 by input columns (and fc1's bias with its rows)."""
    return {"fc1.weight": {"dim": 0, "index": index, "count": count},
            "fc1.bias": {"dim": 0, "index": index, "count": count},
            "fc2.weight": {"dim": 1, "index": index, "count": count}}


def test_model_shards_concatenate_to_the_whole_model(client: Client) -> None:
    whole = client.model(MLP, scheme="he", seed=5)
    count = 3
    ranks = [client.model(MLP, scheme="he", seed=5, shards=tensor_parallel(rank, count)) for rank in range(count)]
    for name, dim in (("fc1.weight", 0), ("fc1.bias", 0), ("fc2.weight", 1)):
        assert np.concatenate([rank[name] for rank in ranks], axis=dim).tobytes() == whole[name].tobytes(), name
    for rank in ranks:  # tensors without a window come whole
        assert list(rank) == list(whole) and rank["fc2.bias"].tobytes() == whole["fc2.bias"].tobytes()
    sliced = client.model(MLP, scheme="he", seed=5, slices={"fc2.weight": [(1, 6), (0, 4)]},
                          shards={"fc2.weight": (0, 1, 2), "fc1.weight": (1, 0, 2)})
    assert sliced["fc2.weight"].tobytes() == np.ascontiguousarray(
        np.array_split(whole["fc2.weight"][1:6, 0:4], 2, axis=0)[1]).tobytes()
    assert sliced["fc1.weight"].tobytes() == np.ascontiguousarray(
        np.array_split(whole["fc1.weight"], 2, axis=1)[0]).tobytes()


def test_flax_dense_general_kernels_shard_along_their_own_axes(client: Client) -> None:
    layers = [{"type": "multihead_attention", "num_heads": 2, "embed_dim": 4, "name": "att"}]
    name = "params/att/query/kernel"  # [4, 2, 2]: generated as a [4, 4] matrix, then reshaped
    whole = client.model(layers, framework="flax", seed=3)[name]
    for dim in range(3):
        parts = [client.model(layers, framework="flax", seed=3, shards={name: (dim, index, 2)})[name]
                 for index in range(2)]
        assert np.concatenate(parts, axis=dim).tobytes() == whole.tobytes(), dim


def test_manifest_digests_of_windows(client: Client) -> None:
    shards = tensor_parallel(1, 2)
    manifest = client.manifest(MLP, seed=1, shards=shards)
    weights = client.model(MLP, seed=1, shards=shards, verify=False)
    whole = client.manifest(MLP, seed=1)
    for entry, full in zip(manifest["tensors"], whole["tensors"], strict=True):
        array = weights[entry["name"]]
        assert hashlib.sha256(array.tobytes()).hexdigest() == entry["sha256"]
        assert list(array.shape) == entry["shape"]
        if entry["name"] in shards:
            shard = shards[entry["name"]]
            box = [[0, n] for n in full["shape"]]
            box[shard["dim"]] = list(shard_bounds(full["shape"][shard["dim"]], 2)[1])
            assert entry["window"] == box and entry["sha256"] != full["sha256"]
            spec = entry["init"]["spec"]  # a rank may fetch its window from /v1/tensor as well: same bytes
            alone = client.tensor(TensorSpec(spec["method"], spec["shape"], params=spec["params"], dtype=spec["dtype"],
                                             layout=spec["layout"], seed=spec["seed"], name=spec["name"]), shard=shard)
            assert hashlib.sha256(alone.tobytes()).hexdigest() == entry["sha256"]
        else:
            assert entry["window"] is None and entry["sha256"] == full["sha256"]


def recording(transport: httpx.BaseTransport, sent: list[httpx.Request],
              change: Callable[[httpx.Request, bytes], bytes] | None = None) -> httpx.MockTransport:
    """The service, recording the requests, answers optionally changed by ``change(request, content)``."""

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        response = transport.handle_request(request)
        if change is None:
            return response
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        return httpx.Response(response.status_code, headers=headers, content=change(request, response.read()))

    return httpx.MockTransport(handler)


def test_model_verifies_windows_with_the_manifest_of_the_same_request(sync_transport: httpx.BaseTransport) -> None:
    sent: list[httpx.Request] = []
    with Client("http://initserve.test", transport=recording(sync_transport, sent), progress=False) as client:
        client.model(MLP, shards=tensor_parallel(0, 2), slices={"fc2.bias": [(2, 5)]}, tensors=["fc1.weight",
                                                                                                  "fc2.bias"])
        client.model(MLP, shards={}, slices={})  # empty: not sent (the answer is the whole model's, bytes and all)
    manifest, body = sent[0], sent[1]
    assert manifest.url.params["format"] == "manifest" and body.url.params["format"] == "safetensors"
    assert manifest.content == body.content and manifest.url.params["tensors"] == body.url.params["tensors"]
    assert json.loads(body.content)["shards"] == tensor_parallel(0, 2)
    assert json.loads(body.content)["slices"] == {"fc2.bias": [[2, 5]]}
    assert not {"slices", "shards"} & set(json.loads(sent[-1].content))


def tamper_digest(name: str) -> Callable[[httpx.Request, bytes], bytes]:
    """Changes the manifest's SHA-256 of tensor ``name`` (other answers pass unchanged)."""

    def change(request: httpx.Request, content: bytes) -> bytes:
        if request.url.params.get("format") != "manifest":
            return content
        document = json.loads(content)
        for entry in document["tensors"]:
            if entry["name"] == name:
                entry["sha256"] = hashlib.sha256(b"something else").hexdigest()
        return json.dumps(document).encode()

    return change


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "json"])
def test_tampered_window_digest_is_refused(sync_transport: httpx.BaseTransport, tmp_path: Path, fmt: str) -> None:
    shards = tensor_parallel(1, 2)
    with Client("http://initserve.test", transport=recording(sync_transport, [], tamper_digest("fc2.weight")),
                progress=False) as client:
        with pytest.raises(IntegrityError) as error:
            client.model(MLP, shards=shards)
        assert error.value.name == "fc2.weight"
        with pytest.raises(IntegrityError, match="fc2.weight"):
            client.download_model(MLP, tmp_path / "m.out", format=fmt, shards=shards)
        assert list(tmp_path.iterdir()) == []
        client.model(MLP, shards=shards, verify=False)  # the caller's choice: nothing checked


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "json", "manifest"])
def test_download_model_windows(client: Client, tmp_path: Path, fmt: str) -> None:
    shards = tensor_parallel(2, 3)
    weights = client.model(LAYERS, scheme="xavier", seed=2, shards={"conv.weight": (1, 0, 2)},
                           slices={"bn.running_var": [(1, 3)]})
    path = client.download_model(LAYERS, tmp_path / f"m.{fmt}", format=fmt, scheme="xavier", seed=2,
                                 shards={"conv.weight": (1, 0, 2)}, slices={"bn.running_var": [(1, 3)]})
    if fmt == "npz":
        with np.load(path) as archive:
            assert archive["conv.weight"].shape == (4, 2, 3, 3) == weights["conv.weight"].shape
            assert archive["bn.running_var"].tobytes() == weights["bn.running_var"].tobytes()
    elif fmt == "manifest":
        windows = {entry["name"]: entry["window"] for entry in json.loads(path.read_bytes())["tensors"]}
        assert windows["conv.weight"] == [[0, 4], [0, 2], [0, 3], [0, 3]] and windows["bn.running_var"] == [[1, 3]]
    assert client.download_model(MLP, tmp_path / f"mlp.{fmt}", format=fmt, shards=shards).is_file()


def test_model_window_refused_by_the_service(client: Client) -> None:
    with pytest.raises(InvalidRequest) as error:
        client.model(MLP, shards={"fc9.weight": (0, 0, 2)})
    assert error.value.status == 422 and error.value.field == "shards.fc9.weight"
    with pytest.raises(InvalidRequest) as error:
        client.manifest(MLP, slices={"fc1.bias": [(0, 11)]})
    assert error.value.field == "slices.fc1.bias"


# --- async -------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_shards_and_model_windows(aclient: AsyncClient, tmp_path: Path) -> None:
    whole = await aclient.tensor("orthogonal", [6, 10], seed=1)
    parts = [await aclient.tensor("orthogonal", [6, 10], seed=1, shard={"dim": 1, "index": index, "count": 4})
             for index in range(4)]
    assert np.concatenate(parts, axis=1).tobytes() == whole.tobytes()
    sliced = await aclient.tensor("orthogonal", [6, 10], seed=1, slice=[(1, 4), (2, 9)])
    assert sliced.tobytes() == np.ascontiguousarray(whole[1:4, 2:9]).tobytes()
    model = await aclient.model(MLP, seed=7)
    ranks = [await aclient.model(MLP, seed=7, shards=tensor_parallel(rank, 2)) for rank in range(2)]
    assert np.concatenate([rank["fc2.weight"] for rank in ranks], axis=1).tobytes() == model["fc2.weight"].tobytes()
    manifest = await aclient.manifest(MLP, seed=7, shards=tensor_parallel(0, 2))
    assert [entry["window"] is not None for entry in manifest["tensors"]] == [True, True, True, False]
    path = await aclient.download_model(MLP, tmp_path / "m.npz", format="npz", seed=7, shards=tensor_parallel(1, 2))
    with np.load(path) as archive:
        assert archive["fc1.weight"].tobytes() == ranks[1]["fc1.weight"].tobytes()
    npy = await aclient.download_tensor("orthogonal", [6, 10], tmp_path / "w.npy", seed=1, shard=(1, 3, 4))
    assert np.load(npy).tobytes() == parts[3].tobytes()


@pytest.mark.anyio
async def test_async_invalid_windows_send_nothing() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"nothing should be sent: {request.method} {request.url}")

    async with AsyncClient("http://initserve.test", transport=httpx.MockTransport(fail), progress=False) as aclient:
        with pytest.raises(InvalidSpec) as error:
            await aclient.tensor("normal", [4, 4], shard={"dim": 0, "index": 2, "count": 2})
        assert error.value.field == "shard.index"
        with pytest.raises(InvalidSpec) as error:
            await aclient.model(MLP, shards={"fc1.weight": {"dim": 0, "index": 3, "count": 3}})
        assert error.value.field == "shards.fc1.weight.index"
        with pytest.raises(InvalidSpec) as error:
            await aclient.download_model(MLP, "m.safetensors", slices={"fc1.weight": [(4, 2)]})
        assert error.value.field == "slices.fc1.weight.0"
