"""Shared test data for the HTTP tests: a valid spec per method, what the core makes of it, problem checks."""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import numpy as np
from starlette.exceptions import StarletteDeprecationWarning

from initserve.api import Settings
from initserve.api.errors import PROBLEM_MEDIA_TYPE
from initserve.core import resolve

with warnings.catch_warnings():  # starlette's TestClient warns that it prefers httpx2 over httpx
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

__all__ = ["SMALL", "SPECS", "TestClient", "assert_problem", "expected", "load_npy", "query_of", "spec_id"]

SMALL = Settings(max_elements=1 << 16, max_json_elements=1 << 10, max_dense_side=64)

# One valid spec per method: every method of the catalogue appears (test_catalog checks it).
SPECS: list[dict[str, Any]] = [
    {"method": "zeros", "shape": [3, 4]},
    {"method": "ones", "shape": [3, 4], "dtype": "float64"},
    {"method": "constant", "shape": [2, 3], "value": 0.5},
    {"method": "uniform", "shape": [5, 7], "low": -1.0, "high": 2.0, "seed": 7},
    {"method": "normal", "shape": [3, 5], "mean": 1.0, "std": 0.5, "name": "fc.weight"},
    {"method": "trunc_normal", "shape": [4, 4], "std": 1.0, "low": -1.0, "high": 1.0, "dtype": "float16"},
    {"method": "xavier_uniform", "shape": [6, 4], "gain": 2.0},
    {"method": "xavier_normal", "shape": [6, 4], "nonlinearity": "tanh", "truncated": True},
    {"method": "kaiming_uniform", "shape": [8, 3, 3, 3], "negative_slope": 5**0.5, "seed": 2**64 - 1},
    {"method": "kaiming_normal", "shape": [8, 4], "mode": "fan_out", "nonlinearity": "relu"},
    {"method": "lecun_uniform", "shape": [5, 5]},
    {"method": "lecun_normal", "shape": [5, 5], "truncated": False},
    {
        "method": "variance_scaling",
        "shape": [3, 3, 4, 8],
        "layout": "keras",
        "mode": "fan_avg",
        "distribution": "uniform",
    },
    {"method": "orthogonal", "shape": [6, 4], "gain": 1.5},
    {"method": "sparse", "shape": [10, 4], "sparsity": 0.3},
    {"method": "eye", "shape": [3, 5]},
    {"method": "dirac", "shape": [4, 2, 3], "groups": 2},
    {"method": "delta_orthogonal", "shape": [4, 3, 3], "layout": "jax"},
]


def spec_id(spec: dict[str, Any]) -> str:
    return str(spec["method"])


def expected(spec: dict[str, Any]) -> np.ndarray:
    """What the core generates for ``spec`` (storage dtype)."""
    return resolve(**spec).region()


def load_npy(content: bytes) -> np.ndarray:
    return np.load(io.BytesIO(content), allow_pickle=False)


def query_of(spec: dict[str, Any]) -> dict[str, str]:
    """``spec`` as GET query parameters."""
    query = {}
    for key, value in spec.items():
        if key == "shape":
            query[key] = ",".join(map(str, value))
        elif isinstance(value, bool):
            query[key] = "true" if value else "false"
        else:
            query[key] = str(value)
    return query


def assert_problem(response: Any, status: int, field: str, value: Any) -> dict[str, Any]:
    """``response`` is a problem+json answer with ``status`` naming ``field`` and ``value`` (also in detail)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "field", "value"} <= problem.keys()
    assert problem["status"] == status
    assert problem["field"] == field and problem["value"] == value
    assert problem["detail"].startswith(f"{field}={json.dumps(value, ensure_ascii=False)}: "), problem["detail"]
    return problem
