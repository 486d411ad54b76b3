"""``POST /v1/stats`` and ``POST /v1/stats/propagation``: the core's figures over HTTP, of exactly the tensors
``/v1/tensor`` and ``/v1/model`` serve; query parameters and errors naming their field; 413 before any work."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from initserve.api import Settings, create_app
from initserve.api.serving import ALGORITHM_HEADER
from initserve.core import ALGORITHM_VERSION, Tensor, resolve
from initserve.core.model import resolve_model
from initserve.core.stats import ALPHA, tensor_statistics
from initserve.core.stats.propagation import propagate

from .cases import TestClient, load_npy
from .model_cases import assert_model_problem, linear, mlp, slices_of


def finite(value: Any) -> Any:
    """What the JSON answer holds for ``value``: infinite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def answer(client: TestClient, path: str, body: Any, **params: Any) -> dict[str, Any]:
    response = client.post(path, json=body, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers[ALGORITHM_HEADER] == ALGORITHM_VERSION
    assert "Infinity" not in response.text and "NaN" not in response.text
    document: dict[str, Any] = response.json()
    assert document["algorithm_version"] == ALGORITHM_VERSION
    return document


def stats_of(client: TestClient, body: Any, **params: Any) -> list[dict[str, Any]]:
    document = answer(client, "/v1/stats", body, **params)
    assert document["alpha"] == ALPHA
    rows: list[dict[str, Any]] = document["tensors"]
    return rows


def conv(i: int, o: int, kernel: int, nonlinearity: str | None = None) -> dict[str, Any]:
    layer = {"type": "conv2d", "in_channels": i, "out_channels": o, "kernel_size": kernel}
    return layer | ({"nonlinearity": nonlinearity} if nonlinearity else {})


@pytest.fixture
def refuse_generation(no_generation: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """``no_generation``, and the subsample path too (``Tensor.take`` computes values without ``region``)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("values were generated before the size check")

    monkeypatch.setattr(Tensor, "take", refuse)


def client_with(**limits: Any) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(**limits))) as test_client:
        yield test_client


@pytest.fixture
def big_client() -> Iterator[TestClient]:
    """Default limits (the classic 500-wide stacks exceed the small test limits)."""
    yield from client_with()


# ---------------------------------------------------------------------------------------------- /v1/stats

SPECS: list[dict[str, Any]] = [
    {"method": "normal", "shape": [37, 29], "mean": 1.0, "std": 0.5, "name": "fc.weight", "seed": 4},
    {"method": "uniform", "shape": [300], "low": -1.0, "high": 2.0, "dtype": "float16"},
    {"method": "trunc_normal", "shape": [40, 50], "std": 2.0, "low": -1.0, "high": 1.5, "bounds": "std",
     "dtype": "float64"},
    {"method": "xavier_uniform", "shape": [3, 3, 8, 16], "layout": "keras"},
    {"method": "kaiming_normal", "shape": [16, 8, 3, 3], "nonlinearity": "relu", "dtype": "bfloat16"},
    {"method": "orthogonal", "shape": [64, 32], "gain": 1.5},
    {"method": "sparse", "shape": [37, 29], "sparsity": 0.3},
    {"method": "eye", "shape": [7, 9]},
    {"method": "dirac", "shape": [6, 3, 3, 3]},
    {"method": "constant", "shape": [4, 5], "value": 0.5},
    {"method": "normal", "shape": [40, 30], "zero_rows": [[0, 2]]},
]


def spec_id(spec: dict[str, Any]) -> str:
    return f"{spec['method']}-{spec.get('dtype', 'float32')}-{spec.get('layout', 'torch')}"


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_a_tensor_spec_gives_one_row_equal_to_the_core(client: TestClient, spec: dict[str, Any]) -> None:
    (row,) = stats_of(client, spec)
    assert row == finite(tensor_statistics(resolve(**spec)))
    assert row["consistent"] is True


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_the_statistics_are_of_the_tensor_v1_tensor_returns(client: TestClient, spec: dict[str, Any]) -> None:
    (row,) = stats_of(client, spec)
    if spec.get("dtype") == "bfloat16":  # npy cannot carry bfloat16: read the safetensors bytes
        response = client.post("/v1/tensor", json=spec, params={"format": "safetensors"})
        assert response.status_code == 200, response.text
        (data,) = slices_of(response.content).values()
        bits = np.frombuffer(data, "<u2").astype(np.uint32) << 16
        values = bits.view(np.float32).astype(np.float64)
    else:
        response = client.post("/v1/tensor", json=spec)
        assert response.status_code == 200, response.text
        values = load_npy(response.content).astype(np.float64)
    assert values.size == row["n"] == row["sample_size"]
    assert (row["min"], row["max"]) == (values.min(), values.max())
    assert row["mean"] == pytest.approx(math.fsum(values.ravel()) / values.size, rel=1e-12, abs=1e-15)


def test_a_model_gives_one_row_per_tensor_in_model_order(client: TestClient) -> None:
    body = {"layers": [linear(10, 64, nonlinearity="relu"), linear(64, 32), linear(32, 1)], "scheme": "he", "seed": 7}
    rows = stats_of(client, body)
    model = resolve_model(body["layers"], scheme="he", seed=7)
    assert [row["name"] for row in rows] == [t.name for t in model.tensors] == [
        "0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    for row, tensor in zip(rows, model.tensors, strict=True):
        assert row == finite(tensor_statistics(tensor.tensor))
    assert all(row["consistent"] for row in rows)
    assert rows[0]["method"] == "kaiming_normal" and rows[1]["method"] == "zeros"


def test_a_keras_model_names_and_layouts(client: TestClient) -> None:
    body = {"layers": [conv(3, 8, 3), linear(8, 4)], "framework": "keras", "seed": 2, "dtype": "float16"}
    rows = stats_of(client, body)
    model = resolve_model(body["layers"], framework="keras", seed=2, dtype="float16")
    assert [row["name"] for row in rows] == [t.name for t in model.tensors]
    assert rows[0]["shape"] == [3, 3, 3, 8] and rows[0]["dtype"] == "float16"
    assert [row for row in rows] == [finite(tensor_statistics(t.tensor)) for t in model.tensors]


def test_bins_and_sample(client: TestClient) -> None:
    spec = {"method": "normal", "shape": [50, 40], "seed": 3}
    (row,) = stats_of(client, spec, bins=5, sample=100)
    assert row == finite(tensor_statistics(resolve(**spec), bins=5, max_sample=100))
    assert row["sample_size"] == 100 and row["n"] == 2000
    assert len(row["histogram"]["counts"]) == 5 and len(row["histogram"]["edges"]) == 6
    assert sum(row["histogram"]["counts"]) == 100
    values = resolve(**spec).region().ravel().astype(np.float64)[[k * 2000 // 100 for k in range(100)]]
    assert (row["min"], row["max"]) == (values.min(), values.max())
    (default,) = stats_of(client, spec)
    assert default["sample_size"] == 2000 and len(default["histogram"]["counts"]) == 20
    (bounds,) = stats_of(client, spec, bins=1000, sample=2)
    assert bounds["sample_size"] == 2 and len(bounds["histogram"]["counts"]) == 1000


@pytest.mark.parametrize("query,field,value", [
    ("bins=0", "bins", "0"),
    ("bins=1001", "bins", "1001"),
    ("bins=ten", "bins", "ten"),
    ("bins=2.5", "bins", "2.5"),
    ("sample=1", "sample", "1"),
    (f"sample={(1 << 22) + 1}", "sample", str((1 << 22) + 1)),
    ("sample=", "sample", ""),
    ("bins=5&bins=6", "bins", ["5", "6"]),
    ("sample=10&sample=10", "sample", ["10", "10"]),
    ("bin=5", "bin", "5"),
    ("format=npy", "format", "npy"),
])
def test_bad_query_parameters_are_422_naming_them(client: TestClient, query: str, field: str, value: Any) -> None:
    response = client.post(f"/v1/stats?{query}", json={"method": "normal", "shape": [4]})
    problem = assert_model_problem(response, 422, field)
    assert problem["value"] == value


def test_infinite_support_is_null(client: TestClient) -> None:
    normal, uniform, sparse = (stats_of(client, spec)[0] for spec in (
        {"method": "normal", "shape": [20]}, {"method": "uniform", "shape": [20], "low": -2.0, "high": 3.0},
        {"method": "sparse", "shape": [10, 4], "sparsity": 0.5}))
    assert (normal["theory"]["low"], normal["theory"]["high"]) == (None, None)
    assert (sparse["theory"]["low"], sparse["theory"]["high"]) == (None, None)
    assert (uniform["theory"]["low"], uniform["theory"]["high"]) == (-2.0, 3.0)


@pytest.mark.parametrize("body,field", [
    ({"method": "normal", "shape": [2], "stdd": 1.0}, "stdd"),
    ({"method": "nrmal", "shape": [2]}, "method"),
    ({"method": "normal", "shape": [2], "std": -1.0}, "std"),
    ({"method": "normal", "shape": [2], "std": 1e-160}, "std"),  # variance 1e-320: beyond float64's normal range
    ({"method": "uniform", "shape": [2], "low": 1.0, "high": 0.0}, "high"),
    ({"method": "orthogonal", "shape": [4]}, "shape"),
    ({"layers": [{"type": "linear", "in_features": 2}]}, "layers.0.out_features"),
    ({"layers": [{"type": "linear", "in_features": 2, "out_features": -1}]}, "layers.0.out_features"),
    ({"layers": [linear(2, 3)], "scheme": "glorot"}, "scheme"),
    ({"layers": []}, "layers"),
])
def test_errors_name_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    assert_model_problem(client.post("/v1/stats", json=body), 422, field)


@pytest.mark.parametrize("limits,body,field", [
    ({"max_elements": 1000}, {"method": "normal", "shape": [100, 100]}, "shape"),
    ({"max_elements": 1000}, {"method": "uniform", "shape": [1001]}, "shape"),
    ({"max_dense_side": 16}, {"method": "orthogonal", "shape": [20, 4]}, "shape"),
    ({"max_dense_side": 16}, {"method": "sparse", "shape": [4, 17], "sparsity": 0.5}, "shape"),
    ({"max_dense_side": 16}, {"method": "delta_orthogonal", "shape": [17, 4, 3]}, "shape"),
    ({"max_model_elements": 500}, mlp(), "layers"),
    ({"max_elements": 1000}, {"layers": [linear(4, 8), linear(40, 30)]}, "layers.1"),
    ({"max_dense_side": 16}, {"layers": [linear(20, 4)], "scheme": "orthogonal"}, "layers.0"),
], ids=["elements", "elements-1d", "orthogonal", "sparse", "delta_orthogonal", "model", "model-tensor",
        "model-orthogonal"])
def test_over_a_limit_is_413_before_any_work(refuse_generation: None, limits: dict[str, int], body: dict[str, Any],
                                             field: str) -> None:
    for test_client in client_with(**limits):
        assert_model_problem(test_client.post("/v1/stats", json=body), 413, field)


def test_at_the_limit_is_served() -> None:
    for test_client in client_with(max_elements=2048, max_dense_side=16, max_model_elements=2817):
        assert len(stats_of(test_client, {"method": "uniform", "shape": [2048]})) == 1
        assert len(stats_of(test_client, {"method": "orthogonal", "shape": [16, 4]})) == 1
        assert len(stats_of(test_client, mlp())) == 6  # 10→64→32→1: 2817 elements, the largest tensor 2048


# ------------------------------------------------------------------------------------ /v1/stats/propagation


def test_the_classic_tanh_collapse_through_http(big_client: TestClient) -> None:
    body = {"layers": [linear(500, 500, nonlinearity="tanh") for _ in range(10)], "scheme": "small_normal",
            "batch_size": 500, "seed": 1}
    report = answer(big_client, "/v1/stats/propagation", body)
    activation = [layer["activation"]["std"] for layer in report["layers"]]
    assert activation[-1] < 1e-5
    assert all(b < a for a, b in itertools.pairwise(activation))
    assert activation[0] == pytest.approx(report["layers"][0]["theory"]["activation_std"], rel=0.05)
    assert report["input"]["shape"] == [500, 500] and report["batch_size"] == 500


def test_a_conv2d_example_equals_the_core(client: TestClient) -> None:
    body = {"layers": [conv(3, 8, 3, "relu"), conv(8, 4, 3, "tanh"), linear(4 * 6 * 6, 5)], "scheme": "he",
            "seed": 2, "batch_size": 8, "input_shape": [3, 6, 6], "input": {"method": "uniform", "low": -1.0}}
    report = answer(client, "/v1/stats/propagation", body)
    core = propagate(body["layers"], scheme="he", seed=2, batch_size=8, input_shape=[3, 6, 6],
                     input={"method": "uniform", "low": -1.0})
    assert report == {"algorithm_version": ALGORITHM_VERSION, **finite(core)}
    assert [layer["type"] for layer in report["layers"]] == ["conv2d", "conv2d", "linear"]
    assert report["layers"][0]["fan_in"] == 27 and report["layers"][2]["fan_in"] == 144


def test_propagation_over_the_work_budget_is_413_before_any_work(refuse_generation: None) -> None:
    body = {"layers": [linear(10, 10), linear(10, 20)], "batch_size": 5}
    for test_client in client_with(max_propagation_work=999):
        problem = assert_model_problem(test_client.post("/v1/stats/propagation", json=body), 413, "layers.1")
        assert problem["value"] == 5 * 20 * 10


def test_propagation_weights_over_a_limit_are_413_before_any_work(refuse_generation: None) -> None:
    for test_client in client_with(max_elements=100):
        response = test_client.post("/v1/stats/propagation", json={"layers": [linear(4, 5), linear(5, 30)]})
        assert_model_problem(response, 413, "layers.1")


@pytest.mark.parametrize("body,field", [
    ({"layers": [{"type": "lstm", "input_size": 2, "hidden_size": 3}]}, "layers.0.type"),
    ({"layers": [linear(2, 3), {"type": "embedding", "num_embeddings": 3, "embedding_dim": 2}]}, "layers.1.type"),
    ({"layers": [conv(3, 4, 3)]}, "input_shape"),
    ({"layers": [conv(3, 4, 2)], "input_shape": [3, 4, 4]}, "layers.0.kernel_size"),
    ({"layers": [conv(4, 4, 3) | {"groups": 2}], "input_shape": [4, 4, 4]}, "layers.0.groups"),
    ({"layers": [linear(4, 5), linear(6, 2)]}, "layers.1.in_features"),
    ({"layers": [linear(4, 5)], "batch_size": 1}, "batch_size"),
    ({"layers": [linear(4, 5)], "input": {"method": "normal", "std": -1.0}}, "input.std"),
    ({"layers": [linear(4, 5)], "input": {"method": "nrmal"}}, "input.method"),
    ({"layers": []}, "layers"),
])
def test_propagation_errors_name_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    assert_model_problem(client.post("/v1/stats/propagation", json=body), 422, field)


@pytest.mark.parametrize("body,field", [
    ({"layers": [linear(4, 5)], "input": {"method": "normal", "stdd": 1.0}}, "input.stdd"),
    ({"layers": [linear(4, 5)], "input": {"method": "normal", "shape": [4]}}, "input.shape"),
    ({"layers": [linear(4, 5)], "input": {"method": "uniform", "low": "zero"}}, "input.low"),
], ids=["unknown-parameter", "shape", "type"])
def test_propagation_input_validation_errors_name_the_input_field(client: TestClient, body: dict[str, Any],
                                                                  field: str) -> None:
    assert_model_problem(client.post("/v1/stats/propagation", json=body), 422, field)


def test_propagation_refuses_query_parameters(client: TestClient) -> None:
    response = client.post("/v1/stats/propagation?batch_size=4", json={"layers": [linear(4, 5)]})
    assert_model_problem(response, 422, "batch_size", "4")


def test_a_dense_input_over_max_dense_side_is_413(refuse_generation: None) -> None:
    body = {"layers": [linear(20, 1)], "input": {"method": "orthogonal"}, "batch_size": 100}
    for test_client in client_with(max_dense_side=64):
        assert test_client.post("/v1/stats/propagation", json=body).status_code == 413

