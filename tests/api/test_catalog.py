"""``/v1/methods``, ``/v1/gain``, ``/v1/fans`` and ``/healthz`` answer what the core computes."""

from __future__ import annotations

import math

import pytest

from initserve.core import ALGORITHM_VERSION, METHODS, NONLINEARITIES, calculate_gain, compute_fans

from .cases import SPECS, assert_problem


def test_methods_lists_the_whole_catalogue(client):
    response = client.get("/v1/methods")
    assert response.status_code == 200
    listed = {entry["name"]: entry for entry in response.json()}
    assert list(listed) == [method.name for method in METHODS]
    assert {spec["method"] for spec in SPECS} == set(listed)  # the tensor tests cover every method
    for method in METHODS:
        entry = listed[method.name]
        assert entry["aliases"] == list(method.aliases)
        assert entry["formula"] == method.formula and entry["reference"] == method.reference
        assert [p["name"] for p in entry["parameters"]] == [p.name for p in method.params]


def test_method_parameters_carry_defaults_bounds_and_choices(client):
    listed = {entry["name"]: {p["name"]: p for p in entry["parameters"]} for entry in client.get("/v1/methods").json()}
    assert listed["normal"]["std"] == {
        "name": "std",
        "kind": "float",
        "required": False,
        "default": 1.0,
        "choices": None,
        "minimum": 0.0,
        "exclusive_minimum": False,
        "maximum": None,
        "doc": "standard deviation",
    }
    assert listed["sparse"]["sparsity"]["required"] is True and listed["sparse"]["sparsity"]["default"] is None
    assert listed["sparse"]["sparsity"]["maximum"] == 1.0
    assert listed["trunc_normal"]["std"]["exclusive_minimum"] is True
    assert listed["variance_scaling"]["mode"]["choices"] == ["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
    assert listed["dirac"]["groups"]["kind"] == "int"
    assert listed["xavier_normal"]["truncated"]["default"] is False


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_gain_table(client, nonlinearity):
    body = client.get("/v1/gain", params={"nonlinearity": nonlinearity}).json()
    assert body == {"nonlinearity": nonlinearity, "negative_slope": None, "gain": calculate_gain(nonlinearity)}


def test_gain_known_values_and_slope(client):
    def gain(**query: str) -> float:
        return float(client.get("/v1/gain", params=query).json()["gain"])

    assert gain(nonlinearity="relu") == math.sqrt(2.0)
    assert gain(nonlinearity="tanh") == 5.0 / 3
    assert gain(nonlinearity="leaky_relu") == math.sqrt(2.0 / (1 + 0.01**2))
    assert gain(nonlinearity="leaky_relu", negative_slope="0.2") == math.sqrt(2.0 / (1 + 0.2**2))


@pytest.mark.parametrize(
    "nonlinearity, slope",
    [("relu", None), ("tanh", None), ("selu", None), ("leaky_relu", None), ("leaky_relu", 0.3), ("sigmoid", None)],
)
def test_gain_equals_torch(client, nonlinearity, slope):
    torch = pytest.importorskip("torch")
    query = {"nonlinearity": nonlinearity, **({"negative_slope": str(slope)} if slope is not None else {})}
    assert client.get("/v1/gain", params=query).json()["gain"] == torch.nn.init.calculate_gain(nonlinearity, slope)


@pytest.mark.parametrize(
    "query, field, value",
    [
        ({"nonlinearity": "swishy"}, "nonlinearity", "swishy"),
        ({}, "nonlinearity", None),
        ({"nonlinearity": "leaky_relu", "negative_slope": "nan"}, "negative_slope", "nan"),
        ({"nonlinearity": "leaky_relu", "negative_slope": "inf"}, "negative_slope", "inf"),
        ({"nonlinearity": "leaky_relu", "negative_slop": "0.2"}, "negative_slop", "0.2"),  # a typo is no default
        ([("nonlinearity", "relu"), ("nonlinearity", "tanh")], "nonlinearity", ["relu", "tanh"]),
    ],
)
def test_gain_errors(client, query, field, value):
    assert_problem(client.get("/v1/gain", params=query), 422, field, value)


@pytest.mark.parametrize(
    "shape, layout, want",
    [
        ("256,128", "torch", (128, 256, 1)),
        ("64,3,3,3", "torch", (27, 576, 9)),
        ("3,3,64,128", "keras", (576, 1152, 9)),
        ("5,7", "jax", (5, 7, 1)),
        (" 5 , 7 ", "jax", (5, 7, 1)),  # spaces around the numbers: in the documented pattern
        ("10", "keras", (10, 10, 1)),
        ("", "keras", (1, 1, 1)),
    ],
)
def test_fans(client, shape, layout, want):
    body = client.get("/v1/fans", params={"shape": shape, "layout": layout}).json()
    dims = [int(d) for d in shape.split(",")] if shape else []
    fans = compute_fans(tuple(dims), layout)
    assert (body["fan_in"], body["fan_out"], body["receptive_field"]) == want == tuple(vars(fans).values())
    assert body["shape"] == dims and body["layout"] == layout


@pytest.mark.parametrize("shape", [(16, 8), (16, 8, 3), (4, 2, 3, 5), (2, 3, 1, 1, 2)])
def test_fans_equal_torch(client, shape):
    torch = pytest.importorskip("torch")
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    body = client.get("/v1/fans", params={"shape": ",".join(map(str, shape))}).json()
    assert (body["fan_in"], body["fan_out"]) == (fan_in, fan_out)


@pytest.mark.parametrize(
    "query, field, value",
    [
        ({"shape": "5"}, "shape", [5]),
        ({"shape": "5", "layout": "jax"}, "shape", [5]),
        ({"shape": ""}, "shape", []),
        ({"shape": "3,-1"}, "shape.1", "-1"),
        ({"shape": "3,a"}, "shape.1", "a"),
        ({"shape": "3,3", "layout": "tf"}, "layout", "tf"),
        ({}, "shape", None),
        ({"shape": "3,3", "layot": "keras"}, "layot", "keras"),
        ([("shape", "3,3"), ("shape", "4,4")], "shape", ["3,3", "4,4"]),
        # what the lax integer parse takes but the documented pattern does not
        ({"shape": "+3,3"}, "shape", "+3,3"),
        ({"shape": "3.0,3"}, "shape", "3.0,3"),
        ({"shape": "3_0,3"}, "shape", "3_0,3"),
        ({"shape": "\t3,3"}, "shape", "\t3,3"),
    ],
)
def test_fans_errors(client, query, field, value):
    assert_problem(client.get("/v1/fans", params=query), 422, field, value)


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok", "algorithm_version": ALGORITHM_VERSION}
