"""Shared data of the client tests: a small model and one valid spec per method."""

from __future__ import annotations

from typing import Any

# A small model that touches several layer kinds, dtypes included (num_batches_tracked is int64).
LAYERS: list[dict[str, Any]] = [
    {"type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "name": "conv"},
    {"type": "batch_norm2d", "num_features": 4, "name": "bn"},
    {"type": "linear", "in_features": 16, "out_features": 8, "nonlinearity": "relu", "name": "fc1"},
    {"type": "linear", "in_features": 8, "out_features": 2, "name": "fc2", "init": {"weight": {"method": "normal",
                                                                                                "std": 0.02}}},
]

# One spec per method (every method of the client's table appears: test_every_method_is_covered).
SPECS: list[dict[str, Any]] = [
    {"method": "zeros", "shape": [3, 4]},
    {"method": "ones", "shape": [3, 4], "dtype": "float64"},
    {"method": "constant", "shape": [2, 3], "value": 0.5},
    {"method": "uniform", "shape": [5, 7], "low": -1.0, "high": 2.0, "seed": 7},
    {"method": "normal", "shape": [3, 5], "mean": 1.0, "std": 0.5, "name": "fc.weight"},
    {"method": "trunc_normal", "shape": [4, 4], "low": -1.0, "high": 1.0, "dtype": "float16"},
    {"method": "xavier_uniform", "shape": [6, 4], "gain": 2.0},
    {"method": "xavier_normal", "shape": [6, 4], "nonlinearity": "tanh", "truncated": True},
    {"method": "kaiming_uniform", "shape": [8, 3, 3, 3], "negative_slope": 5**0.5, "seed": 2**64 - 1},
    {"method": "kaiming_normal", "shape": [8, 4], "mode": "fan_out", "nonlinearity": "relu"},
    {"method": "lecun_uniform", "shape": [5, 5]},
    {"method": "lecun_normal", "shape": [5, 5], "truncated": False},
    {"method": "variance_scaling", "shape": [3, 3, 4, 8], "layout": "keras", "mode": "fan_avg",
     "distribution": "uniform"},
    {"method": "orthogonal", "shape": [6, 4], "gain": 1.5},
    {"method": "sparse", "shape": [10, 4], "sparsity": 0.3},
    {"method": "eye", "shape": [3, 5]},
    {"method": "dirac", "shape": [4, 2, 3], "groups": 2},
    {"method": "delta_orthogonal", "shape": [4, 3, 3], "layout": "jax"},
]
