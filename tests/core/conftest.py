"""Shared helpers for core tests: the method table the tests are driven by."""

from __future__ import annotations

from typing import Any

# (method, params, shapes it accepts) — every method of the catalogue appears once.
CASES: list[tuple[str, dict[str, Any], list[tuple[int, ...]]]] = [
    ("zeros", {}, [(7,), (5, 3), (0, 4)]),
    ("ones", {}, [(), (5, 3)]),
    ("constant", {"value": -0.25}, [(3, 5, 2)]),
    ("uniform", {"low": -0.5, "high": 2.0}, [(301,), (37, 29), (0,)]),
    ("normal", {"mean": 1.0, "std": 0.5}, [(301,), (37, 29), (8, 3, 3, 3)]),
    ("trunc_normal", {"mean": 0.5, "std": 1.0, "low": -1.0, "high": 2.5}, [(301,), (37, 29)]),
    ("xavier_uniform", {}, [(37, 29), (16, 8, 3, 3), (0, 5)]),
    ("xavier_normal", {"gain": 2.0}, [(37, 29), (16, 8, 3)]),
    ("kaiming_uniform", {"negative_slope": 5**0.5}, [(37, 29), (16, 8, 3, 3)]),
    ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "relu"}, [(37, 29), (16, 8, 5)]),
    ("lecun_uniform", {}, [(37, 29)]),
    ("lecun_normal", {}, [(37, 29), (4, 6, 3, 3)]),
    ("variance_scaling", {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform"}, [(37, 29)]),
    ("orthogonal", {"gain": 1.5}, [(37, 29), (20, 45), (8, 3, 3, 3)]),
    ("sparse", {"sparsity": 0.3, "std": 0.02}, [(37, 29)]),
    ("eye", {"gain": 2.0}, [(7, 9), (9, 7)]),
    ("dirac", {"groups": 2}, [(8, 4, 3), (6, 3, 3, 3), (4, 2, 2, 2, 2)]),
    ("delta_orthogonal", {"gain": 1.0}, [(8, 4, 3), (6, 6, 3, 3)]),
]

SPEC_CASES = [(m, p, s) for m, p, shapes in CASES for s in shapes]
