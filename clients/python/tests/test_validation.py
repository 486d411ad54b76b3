"""Client-side validation: InvalidSpec names the field, and nothing is sent."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from initserve_client import Client, TensorSpec, is_method
from initserve_client.errors import InitserveError, InvalidSpec

LAYER = {"type": "linear", "in_features": 4, "out_features": 2}


@pytest.fixture
def sent() -> list[httpx.Request]:
    return []


@pytest.fixture
def client(sent: list[httpx.Request]) -> Iterator[Client]:
    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    with Client("http://initserve.test", transport=httpx.MockTransport(record), retries=0) as recording:
        yield recording


Call = Callable[[Client], Any]
CASES: list[tuple[str, Call, str]] = [
    ("unknown method", lambda c: c.tensor("he_normall", [2]), "method"),
    ("parameter of another method", lambda c: c.tensor("xavier_uniform", [2, 2], std=0.1), "std"),
    ("typo'd parameter", lambda c: c.tensor("normal", [2], stddev=0.1), "stddev"),
    ("string for a float", lambda c: c.tensor("normal", [2], std="0.1"), "std"),
    ("bool for a float", lambda c: c.tensor("normal", [2], mean=True), "mean"),
    ("NaN", lambda c: c.tensor("normal", [2], std=math.nan), "std"),
    ("inf", lambda c: c.tensor("uniform", [2], high=math.inf), "high"),
    ("int for a bool", lambda c: c.tensor("xavier_normal", [2, 2], truncated=1), "truncated"),
    ("float for an int", lambda c: c.tensor("dirac", [2, 2, 3], groups=1.0), "groups"),
    ("bool for an int", lambda c: c.tensor("dirac", [2, 2, 3], groups=True), "groups"),
    ("choice of another method", lambda c: c.tensor("kaiming_normal", [2, 2], mode="fan_avg"), "mode"),
    ("unknown nonlinearity", lambda c: c.tensor("kaiming_uniform", [2, 2], nonlinearity="relu6"), "nonlinearity"),
    ("missing required", lambda c: c.tensor("constant", [2]), "value"),
    ("missing sparsity", lambda c: c.tensor("sparse", [4, 4], std=0.1), "sparsity"),
    ("negative dim", lambda c: c.tensor("normal", [4, -1]), "shape.1"),
    ("float dim", lambda c: c.tensor("normal", [4.0]), "shape.0"),
    ("string shape", lambda c: c.tensor("normal", "4,4"), "shape"),
    ("int shape", lambda c: c.tensor("normal", 4), "shape"),
    ("no shape", lambda c: c.tensor("normal"), "shape"),
    ("unknown dtype", lambda c: c.tensor("normal", [2], dtype="float8"), "dtype"),
    ("unknown layout", lambda c: c.tensor("normal", [2], layout="tf"), "layout"),
    ("negative seed", lambda c: c.tensor("normal", [2], seed=-1), "seed"),
    ("seed of 2**64", lambda c: c.tensor("normal", [2], seed=2**64), "seed"),
    ("float seed", lambda c: c.tensor("normal", [2], seed=1.5), "seed"),
    ("long name", lambda c: c.tensor("normal", [2], name="x" * 1025), "name"),
    ("bad zero_rows", lambda c: c.tensor("normal", [4, 2], zero_rows=[[1]]), "zero_rows.0"),
    ("negative zero_rows", lambda c: c.tensor("normal", [4, 2], zero_rows=[[-1, 2]]), "zero_rows.0.0"),
    ("spec and kwargs", lambda c: c.tensor(TensorSpec("normal", [2]), seed=1), "seed"),
    ("spec and shape", lambda c: c.tensor(TensorSpec("normal", [2]), [2]), "shape"),
    ("tensor format", lambda c: c.download_tensor("normal", [2], "w", format="npz"), "format"),
    ("no path", lambda c: c.download_tensor("normal", [2]), "path"),
    ("spec with positional path", lambda c: c.download_tensor(TensorSpec("normal", [2]), "w.npy"), "shape"),
    ("no layers", lambda c: c.model([]), "layers"),
    ("one layer, not a list", lambda c: c.model(LAYER), "layers"),
    ("layer without type", lambda c: c.model([{"in_features": 3}]), "layers.0.type"),
    ("layer not an object", lambda c: c.model([LAYER, "linear"]), "layers.1"),
    ("NaN in a layer", lambda c: c.model([{**LAYER, "negative_slope": math.nan}]), "layers.0.negative_slope"),
    ("object in a layer", lambda c: c.model([{**LAYER, "name": object()}]), "layers.0.name"),
    ("layer init method", lambda c: c.model([{**LAYER, "init": {"weight": {"method": "nope"}}}]),
     "layers.0.init.weight.method"),
    ("layer init parameter", lambda c: c.model([{**LAYER, "init": {"bias": {"method": "zeros", "std": 1.0}}}]),
     "layers.0.init.bias.std"),
    ("tensor layer init", lambda c: c.model([{"type": "tensor", "name": "t", "shape": [2], "init": None}]),
     "layers.0.init"),
    ("tensor layer shape", lambda c: c.model([{"type": "tensor", "name": "t", "shape": [-2],
                                                "init": {"method": "ones"}}]), "layers.0.shape.0"),
    ("framework", lambda c: c.model([LAYER], framework="tensorflow"), "framework"),
    ("preset", lambda c: c.model([LAYER], scheme="kaiming"), "scheme"),
    ("scheme role", lambda c: c.model([LAYER], scheme={"kernel": {"method": "zeros"}}), "scheme.kernel"),
    ("scheme init", lambda c: c.model([LAYER], scheme={"weight": {"method": "normal", "stdev": 1}}),
     "scheme.weight.stdev"),
    ("model dtype", lambda c: c.model([LAYER], dtype="int64"), "dtype"),
    ("model seed", lambda c: c.manifest([LAYER], seed=-3), "seed"),
    ("n_layer", lambda c: c.model([LAYER], n_layer="2"), "n_layer"),
    ("tensors as a string", lambda c: c.model([LAYER], tensors="0.weight,0.bias"), "tensors"),
    ("tensor name with a comma", lambda c: c.model([LAYER], tensors=["a,b"]), "tensors.0"),
    ("model format", lambda c: c.download_model([LAYER], "m", format="raw"), "format"),
    ("shard index = count", lambda c: c.tensor("normal", [4, 4], shard={"dim": 0, "index": 2, "count": 2}),
     "shard.index"),
    ("shard negative index", lambda c: c.tensor("normal", [4, 4], shard=(0, -1, 2)), "shard.index"),
    ("shard count 0", lambda c: c.tensor("normal", [4, 4], shard={"dim": 0, "index": 0, "count": 0}), "shard.count"),
    ("shard float dim", lambda c: c.tensor("normal", [4, 4], shard=(0.0, 0, 2)), "shard.dim"),
    ("shard bool count", lambda c: c.tensor("normal", [4, 4], shard=(0, 0, True)), "shard.count"),
    ("shard unknown key", lambda c: c.tensor("normal", [4], shard={"dim": 0, "index": 0, "count": 1, "axis": 0}),
     "shard.axis"),
    ("shard missing key", lambda c: c.tensor("normal", [4], shard={"dim": 0, "count": 2}), "shard.index"),
    ("shard pair", lambda c: c.tensor("normal", [4], shard=(0, 1)), "shard"),
    ("shard string", lambda c: c.tensor("normal", [4], shard="0:1:2"), "shard"),
    ("slice start > stop", lambda c: c.tensor("normal", [4, 4], slice=[(0, 4), (3, 1)]), "slice.1"),
    ("slice negative", lambda c: c.tensor("normal", [4, 4], slice=[(-1, 2)]), "slice.0.0"),
    ("slice float", lambda c: c.tensor("normal", [4, 4], slice=[(0, 2.0)]), "slice.0.1"),
    ("slice not pairs", lambda c: c.tensor("normal", [4, 4], slice=[0, 2]), "slice.0"),
    ("slice string", lambda c: c.tensor("normal", [4, 4], slice="0:2"), "slice"),
    ("download_tensor shard", lambda c: c.download_tensor("normal", [4], "w.npy", shard=(0, 3, 3)), "shard.index"),
    ("model shard", lambda c: c.model([LAYER], shards={"0.weight": {"dim": 1, "index": 4, "count": 4}}),
     "shards.0.weight.index"),
    ("model slice", lambda c: c.manifest([LAYER], slices={"0.weight": [(2, 1)]}), "slices.0.weight.0"),
    ("model slices not a mapping", lambda c: c.model([LAYER], slices=[(0, 1)]), "slices"),
    ("model shards name", lambda c: c.download_model([LAYER], "m", shards={3: (0, 0, 1)}), "shards.3"),
    ("download_model shard", lambda c: c.download_model([LAYER], "m", shards={"0.bias": (0, 0, -1)}),
     "shards.0.bias.count"),
    ("stats without anything", lambda c: c.stats(), "method"),
    ("stats with both", lambda c: c.stats("normal", [2], layers=[LAYER]), "layers"),
    ("stats model option for a tensor", lambda c: c.stats("normal", [2], scheme="he"), "scheme"),
    ("stats tensor option for a model", lambda c: c.stats(layers=[LAYER], std=1.0), "std"),
    ("stats bins", lambda c: c.stats("normal", [2], bins="20"), "bins"),
    ("stats sample", lambda c: c.stats("normal", [2], sample=2.5), "sample"),
    ("propagation input", lambda c: c.propagation([LAYER], input={"method": "normal", "sd": 1}), "input.sd"),
    ("propagation input_shape", lambda c: c.propagation([LAYER], input_shape=[3, -1]), "input_shape.1"),
    ("propagation batch", lambda c: c.propagation([LAYER], batch_size=None), "batch_size"),
    ("gain nonlinearity", lambda c: c.gain("relu6"), "nonlinearity"),
    ("gain slope", lambda c: c.gain("leaky_relu", "0.2"), "negative_slope"),
    ("fans shape", lambda c: c.fans([3, None]), "shape.1"),
    ("fans layout", lambda c: c.fans([3, 3], layout="flax"), "layout"),
]


@pytest.mark.parametrize(("call", "field"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_invalid_requests_are_refused_before_sending(client: Client, sent: list[httpx.Request], call: Call,
                                                     field: str) -> None:
    with pytest.raises(InvalidSpec) as error:
        call(client)
    assert error.value.field == field, str(error.value)
    assert isinstance(error.value, ValueError) and isinstance(error.value, InitserveError)
    assert str(error.value).startswith(f"{field}=") and error.value.message in str(error.value)
    assert sent == []


def test_tensor_spec_validates_on_construction() -> None:
    with pytest.raises(InvalidSpec) as error:
        TensorSpec("normal", (2,), params={"std": "wide"})
    assert error.value.field == "std" and error.value.value == "wide"
    with pytest.raises(InvalidSpec, match="params"):
        TensorSpec("normal", (2,), params=[("std", 1.0)])  # type: ignore[arg-type]
    spec = TensorSpec("he_normal", np.array([4, 3]), params={"mode": "fan_out", "gain": None}, seed=np.uint64(5))
    assert spec.shape == (4, 3) and spec.params == {"mode": "fan_out"} and spec.canonical_method == "kaiming_normal"
    assert spec.to_json() == {"method": "he_normal", "shape": [4, 3], "dtype": "float32", "layout": "torch", "seed": 5,
                              "name": "", "mode": "fan_out"}
    assert type(spec.seed) is int


def test_numpy_values_are_sent_as_plain_json(sent: list[httpx.Request], client: Client, tmp_path: Path) -> None:
    with pytest.raises(InitserveError):  # the recording transport answers 500
        client.tensor("normal", np.array([3, 4]), std=np.float32(0.5), seed=np.int64(2), zero_rows=[(np.int32(0), 1)])
    assert json.loads(sent[-1].content) == {"method": "normal", "shape": [3, 4], "dtype": "float32", "layout": "torch",
                                            "seed": 2, "name": "", "std": 0.5, "zero_rows": [[0, 1]]}
    with pytest.raises(InitserveError):
        client.model([{**LAYER, "in_features": np.int64(4), "negative_slope": np.float64(0.1)}], scheme={
            "weight": {"method": "normal", "std": np.float16(0.5)}}, n_layer=np.int8(2))
    body = json.loads(sent[-1].content)
    assert body["layers"] == [{**LAYER, "negative_slope": 0.1}] and body["scheme"] == {"weight": {"method": "normal",
                                                                                                "std": 0.5}}
    assert body["n_layer"] == 2 and sent[-1].url.params["format"] == "manifest"  # verify: the manifest comes first
    with pytest.raises(InitserveError):
        client.gain("leaky_relu", np.float32(0.25))
    assert sent[-1].url.params["negative_slope"] == "0.25"


def test_windows_are_sent_as_plain_json(sent: list[httpx.Request], client: Client) -> None:
    with pytest.raises(InitserveError):
        client.tensor("normal", [4, 6], slice=np.array([[1, 3]]), shard=(np.int64(-1), np.int32(1), np.uint8(2)))
    body = json.loads(sent[-1].content)
    assert body["slice"] == [[1, 3]] and body["shard"] == {"dim": -1, "index": 1, "count": 2}  # dim < 0: from the end
    with pytest.raises(InitserveError):
        client.model([LAYER], slices={"0.weight": [(np.int64(0), 1)]}, shards={"0.bias": {"count": 2, "index": 1,
                                                                                           "dim": 0}})
    body = json.loads(sent[-1].content)
    assert body["slices"] == {"0.weight": [[0, 1]]} and body["shards"] == {"0.bias": {"dim": 0, "index": 1, "count": 2}}
    with pytest.raises(InitserveError):
        client.tensor("normal", [4])
    assert not {"slice", "shard"} & set(json.loads(sent[-1].content))


def test_none_means_the_default(sent: list[httpx.Request], client: Client) -> None:
    with pytest.raises(InitserveError):
        client.tensor("kaiming_normal", [2, 2], gain=None, nonlinearity=None, seed=None, name=None, zero_rows=None)
    assert json.loads(sent[-1].content) == {"method": "kaiming_normal", "shape": [2, 2], "dtype": "float32",
                                            "layout": "torch", "seed": 0, "name": ""}


def test_type_guards() -> None:
    assert is_method("he_normal") and not is_method("he") and not is_method(3)
