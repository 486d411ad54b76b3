"""The error table: every bad input is a 4xx problem+json naming the field and the value; bugs are 500."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from initserve.api import Settings, TooLarge, create_app
from initserve.api.errors import PROBLEM_MEDIA_TYPE, PROBLEMS, Overloaded
from initserve.core import SpecError
from initserve.core.deadline import DeadlineExceeded
from initserve.core.errors import WorkLimit
from initserve.formats import FormatError

from .cases import TestClient, assert_problem

NAN_BODY = '{"method": "normal", "shape": [2], "std": NaN}'

# (id, verb, payload, field, value): POST payloads are JSON bodies (a str is sent verbatim), GET ones queries.
CASES: list[tuple[str, str, Any, str, Any]] = [
    ("unknown method", "POST", {"method": "gaussian", "shape": [2]}, "method", "gaussian"),
    ("unknown method, query", "GET", {"method": "gaussian", "shape": "2"}, "method", "gaussian"),
    ("missing method", "POST", {"shape": [2]}, "method", None),
    (
        "unknown nonlinearity",
        "POST",
        {"method": "kaiming_normal", "shape": [4, 4], "nonlinearity": "swishy"},
        "nonlinearity",
        "swishy",
    ),
    (
        "unknown nonlinearity, xavier",
        "GET",
        {"method": "xavier_uniform", "shape": "4,4", "nonlinearity": "x"},
        "nonlinearity",
        "x",
    ),
    ("negative dim", "POST", {"method": "normal", "shape": [3, -1]}, "shape", [3, -1]),
    ("negative dim, query", "GET", {"method": "normal", "shape": "-3"}, "shape", [-3]),
    ("non-int dim", "POST", {"method": "normal", "shape": [2.5]}, "shape.0", 2.5),
    ("string dim", "POST", {"method": "normal", "shape": ["2"]}, "shape.0", "2"),
    ("shape as string", "POST", {"method": "normal", "shape": "2,3"}, "shape", "2,3"),
    ("non-int dim, query", "GET", {"method": "normal", "shape": "2,x"}, "shape.1", "x"),
    ("dim 3_0, query", "GET", {"method": "normal", "shape": "3_0"}, "shape", "3_0"),  # lax int parse, not the pattern
    ("dim +3, query", "GET", {"method": "normal", "shape": "2,+3"}, "shape", "2,+3"),
    ("float in shard, query", "GET", {"method": "normal", "shape": "4", "shard": "0:0:2.0"}, "shard", "0:0:2.0"),
    ("tab in zero_rows, query", "GET", {"method": "normal", "shape": "4", "zero_rows": "\t0:1"}, "zero_rows", "\t0:1"),
    ("slice 0:1.0, query", "GET", {"method": "normal", "shape": "4", "slice": "0:1.0"}, "slice", "0:1.0"),
    ("missing shape", "POST", {"method": "normal"}, "shape", None),
    ("too many dims", "POST", {"method": "zeros", "shape": [1] * 9}, "shape", [1] * 9),
    # dimensions past int64 were OverflowErrors (500s) computing fans (found fuzzing, test_fuzz)
    ("dim over int64", "POST", {"method": "xavier_uniform", "shape": [2**63, 2]}, "shape", [2**63, 2]),
    ("400-digit dim", "POST", {"method": "kaiming_normal", "shape": [10**400, 10**400]}, "shape", [10**400] * 2),
    ("400-digit dim, query", "GET", {"method": "lecun_uniform", "shape": f"3,{10**400}"}, "shape", [3, 10**400]),
    ("400-digit groups", "POST", {"method": "dirac", "shape": [4, 2, 3], "groups": 10**400}, "groups", 10**400),
    ("negative std", "POST", {"method": "normal", "shape": [2], "std": -1}, "std", -1.0),
    ("negative std, query", "GET", {"method": "normal", "shape": "2", "std": "-0.5"}, "std", -0.5),
    ("NaN number", "POST", NAN_BODY, "std", "nan"),
    ("inf number", "POST", NAN_BODY.replace("NaN", "Infinity"), "std", "inf"),
    ("-inf number", "POST", NAN_BODY.replace("NaN", "-Infinity"), "std", "-inf"),
    ("NaN string", "POST", {"method": "normal", "shape": [2], "std": "NaN"}, "std", "NaN"),
    ("inf string", "POST", {"method": "normal", "shape": [2], "std": "inf"}, "std", "inf"),
    ("NaN query", "GET", {"method": "normal", "shape": "2", "std": "NaN"}, "std", "NaN"),
    ("inf query", "GET", {"method": "uniform", "shape": "2", "high": "inf"}, "high", "inf"),
    ("-Infinity query", "GET", {"method": "uniform", "shape": "2", "low": "-Infinity"}, "low", "-Infinity"),
    ("typo stddev", "POST", {"method": "normal", "shape": [2], "stddev": 0.1}, "stddev", 0.1),
    ("typo stddev, query", "GET", {"method": "normal", "shape": "2", "stddev": "0.1"}, "stddev", "0.1"),
    ("seed -1", "POST", {"method": "normal", "shape": [2], "seed": -1}, "seed", -1),
    ("seed 2**64", "POST", {"method": "normal", "shape": [2], "seed": 2**64}, "seed", 2**64),
    ("seed 2**64, query", "GET", {"method": "normal", "shape": "2", "seed": str(2**64)}, "seed", 2**64),
    ("seed float", "POST", {"method": "normal", "shape": [2], "seed": 1.5}, "seed", 1.5),
    ("fan of 1-D", "POST", {"method": "xavier_uniform", "shape": [5]}, "shape", [5]),
    ("fan of 1-D, jax", "POST", {"method": "kaiming_normal", "shape": [5], "layout": "jax"}, "shape", [5]),
    ("sparse 3-D", "POST", {"method": "sparse", "shape": [2, 2, 2], "sparsity": 0.5}, "shape", [2, 2, 2]),
    ("eye 3-D", "POST", {"method": "eye", "shape": [2, 2, 2]}, "shape", [2, 2, 2]),
    ("dirac 2-D", "POST", {"method": "dirac", "shape": [2, 2]}, "shape", [2, 2]),
    ("dirac groups", "POST", {"method": "dirac", "shape": [4, 2, 3], "groups": 3}, "groups", 3),
    ("uniform low == high", "POST", {"method": "uniform", "shape": [2], "low": 1, "high": 1}, "high", 1.0),
    ("uniform low > high", "GET", {"method": "uniform", "shape": "2", "low": "2", "high": "1"}, "high", 1.0),
    ("values overflow float32", "POST", {"method": "normal", "shape": [2], "std": 1e38}, "std", 1e38),
    ("high − low overflows", "POST", {"method": "uniform", "shape": [2], "low": -1e308, "high": 1e308}, "low", -1e308),
    ("gain overflows", "GET", {"method": "orthogonal", "shape": "4,4", "gain": "1e200"}, "gain", 1e200),
    ("trunc_normal low > high", "POST", {"method": "trunc_normal", "shape": [2], "low": 3, "high": 2}, "high", 2.0),
    ("sparsity > 1", "POST", {"method": "sparse", "shape": [4, 4], "sparsity": 1.5}, "sparsity", 1.5),
    ("constant without value", "POST", {"method": "constant", "shape": [2]}, "value", None),
    (
        "gain and nonlinearity",
        "POST",
        {"method": "xavier_normal", "shape": [4, 4], "gain": 2, "nonlinearity": "relu"},
        "gain",
        2.0,
    ),
    ("bad choice", "POST", {"method": "variance_scaling", "shape": [4, 4], "mode": "fan_max"}, "mode", "fan_max"),
    ("bad dtype", "POST", {"method": "normal", "shape": [2], "dtype": "float8"}, "dtype", "float8"),
    ("bad layout", "GET", {"method": "normal", "shape": "2", "layout": "tf"}, "layout", "tf"),
    ("bool for float", "POST", {"method": "normal", "shape": [2], "std": True}, "std", True),
    ("bad format", "GET", {"method": "normal", "shape": "2", "format": "npz"}, "format", "npz"),
    ("bfloat16 npy", "POST", {"method": "normal", "shape": [2], "dtype": "bfloat16"}, "format", "npy"),
    ("long name", "POST", {"method": "normal", "shape": [2], "name": "n" * 1025}, "name", "n" * 200 + "…"),
    ("not JSON", "POST", "{method: normal", "body", None),
    ("not an object", "POST", "[1, 2]", "body", [1, 2]),
]


def send(client: TestClient, verb: str, payload: Any) -> Any:
    if verb == "GET":
        return client.get("/v1/tensor", params=payload)
    if isinstance(payload, str):
        return client.post("/v1/tensor", content=payload, headers={"content-type": "application/json"})
    return client.post("/v1/tensor", json=payload)


@pytest.mark.parametrize("verb, payload, field, value", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_422_naming_field_and_value(client, verb, payload, field, value):
    assert_problem(send(client, verb, payload), 422, field, value)


def test_repeated_and_unknown_query_parameters(client):
    problem = assert_problem(client.get("/v1/tensor?method=normal&shape=2&seed=1&seed=2"), 422, "seed", ["1", "2"])
    assert "more than once" in problem["detail"]
    assert_problem(
        client.post("/v1/tensor?fromat=json", json={"method": "normal", "shape": [2]}), 422, "fromat", "json"
    )


def test_validation_problem_lists_every_error(client):
    response = client.post("/v1/tensor", json={"method": "normal", "shape": [2], "std": "x", "mean": "y"})
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"std", "mean"}


BODY_ROUTES = ["/v1/tensor", "/v1/stats", "/v1/stats/propagation", "/v1/model"]


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("field", ["name", "std", "layers"])
def test_deeply_nested_values_are_422(client, path, field):
    """Found fuzzing: a value nested 500 deep (still JSON that parses) was a 500: rendering the 422 about it
    recursed once per level (errors.jsonable)."""
    nested = "[" * 500 + "]" * 500
    response = client.post(path, content=f'{{"method": "normal", "shape": [2], "{field}": {nested}}}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize(
    "body",
    [b"\x80", b'{"method": "normal", "shape": [2], "name": "\xff"}', b"[" * 100_000 + b"]" * 100_000],
    ids=["not UTF-8", "not UTF-8 in a string", "nested too deep"],
)
def test_unreadable_json_body_is_422_invalid_json(client, path, body):
    """Found by fuzzing (test_fuzz): ``POST /v1/tensor`` with the body ``\\x80`` was FastAPI's bare 400 ("There
    was an error parsing the body"), undocumented; it is invalid JSON like any other, as /v1/model says."""
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert "invalid JSON" in assert_problem(response, 422, "body", None)["detail"]


@pytest.mark.parametrize(
    "verb, payload, field, value",
    [
        ("POST", {"method": "normal", "shape": [1 << 20, 1 << 20]}, "shape", [1 << 20, 1 << 20]),
        ("GET", {"method": "uniform", "shape": "65537"}, "shape", [65537]),
        ("GET", {"method": "normal", "shape": "1025", "format": "json"}, "format", "json"),
        ("POST", {"method": "orthogonal", "shape": [65, 2]}, "shape", [65, 2]),
        ("POST", {"method": "orthogonal", "shape": [2, 5, 13]}, "shape", [2, 5, 13]),  # 2 × 65 matrix
        ("POST", {"method": "sparse", "shape": [2, 65], "sparsity": 0.5}, "shape", [2, 65]),
        ("POST", {"method": "delta_orthogonal", "shape": [65, 1, 3]}, "shape", [65, 1, 3]),
    ],
)
def test_too_large_is_413_before_any_work(client, no_generation, verb, payload, field, value):
    started = time.perf_counter()
    problem = assert_problem(send(client, verb, payload), 413, field, value)
    assert time.perf_counter() - started < 1.0
    assert "INITSERVE_MAX" in problem["detail"]


@pytest.mark.parametrize(
    "spec, fmt",
    [
        ({"method": "uniform", "shape": [1 << 16]}, "npy"),  # exactly max_elements
        ({"method": "normal", "shape": [1 << 10]}, "json"),  # exactly max_json_elements
        ({"method": "orthogonal", "shape": [64, 64]}, "raw"),  # exactly max_dense_side
        ({"method": "normal", "shape": [2048]}, "npy"),  # above the JSON cap, fine in npy
    ],
)
def test_limits_are_inclusive(client, spec, fmt):
    assert client.post("/v1/tensor", params={"format": fmt}, json=spec).status_code == 200


@pytest.mark.parametrize("error", [ValueError("boom"), RuntimeError("boom"), KeyError("boom")])
def test_unexpected_exceptions_are_500_never_4xx(monkeypatch, error):
    def broken(**kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr("initserve.api.serving.resolve", broken)
    with TestClient(create_app(Settings()), raise_server_exceptions=False) as client:
        response = client.post("/v1/tensor", json={"method": "normal", "shape": [2]})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "boom" not in response.text  # internals are not leaked


def test_unknown_path_is_a_problem(client):
    response = client.get("/v1/tensors")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


@pytest.mark.parametrize(
    "verb, path, allow",
    [("OPTIONS", "/v1/tensor", "GET, HEAD, POST"), ("DELETE", "/v1/tensor", "GET, HEAD, POST"),
     ("GET", "/v1/model", "POST"), ("PUT", "/v1/stats", "POST"), ("POST", "/healthz", "GET")],
)
def test_wrong_verb_is_405_allowing_every_method_of_the_path(client, verb, path, allow):
    """Found by fuzzing (test_fuzz): ``OPTIONS /v1/tensor`` answered ``Allow: POST`` (Starlette names the first
    route matching the path only), though the path also serves GET and HEAD."""
    response = client.request(verb, path)
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["allow"] == allow


def test_the_table():
    assert {cls: row.status for cls, row in PROBLEMS.items() if cls is not Exception and row.status != 400} == {
        SpecError: 422,
        FormatError: 422,
        TooLarge: 413,
        WorkLimit: 413,
        Overloaded: 503,
        DeadlineExceeded: 503,
        RequestValidationError: 422,
    }
    assert PROBLEMS[Exception].status == 500
    assert ValueError not in PROBLEMS and TypeError not in PROBLEMS and KeyError not in PROBLEMS
