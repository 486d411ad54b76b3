"""Print SHA-256 digests of every method's tensor as JSON (run in a subprocess by the tests).

``python digests.py reference`` disables the compiled kernel, so the numpy
reference implementation produces the bytes.
"""

from __future__ import annotations

import hashlib
import json
import sys

from initserve.core import resolve, stream

# One spec per method, big enough to exercise the normal tails and several blocks.
SPECS: list[tuple[str, dict[str, object], list[int]]] = [
    ("zeros", {}, [3, 5]),
    ("ones", {}, [3, 5]),
    ("constant", {"value": 0.1}, [3, 5]),
    ("uniform", {"low": -0.3, "high": 0.7}, [257, 301]),
    ("normal", {"mean": 0.1, "std": 0.9}, [257, 301]),
    ("trunc_normal", {"mean": 0.0, "std": 1.0, "low": -2.0, "high": 1.0}, [257, 301]),
    ("xavier_uniform", {}, [257, 301]),
    ("xavier_normal", {"truncated": True}, [64, 32, 3, 3]),
    ("kaiming_uniform", {"negative_slope": 5**0.5}, [257, 301]),
    ("kaiming_normal", {"nonlinearity": "relu"}, [64, 32, 3, 3]),
    ("lecun_uniform", {}, [100, 80]),
    ("lecun_normal", {}, [100, 80]),
    ("variance_scaling", {"scale": 2.0, "mode": "fan_geo_avg", "distribution": "normal"}, [100, 80]),
    ("orthogonal", {"gain": 1.2}, [96, 40]),
    ("sparse", {"sparsity": 0.25}, [120, 50]),
    ("eye", {}, [30, 40]),
    ("dirac", {"groups": 2}, [8, 4, 3, 3]),
    ("delta_orthogonal", {}, [16, 8, 3, 3]),
]
DTYPES = ("float32", "float64")


def digests() -> dict[str, str]:
    result = {}
    for method, params, shape in SPECS:
        for dtype in DTYPES:
            tensor = resolve(method, shape, dtype=dtype, seed=2024, name=f"{method}.weight", **params)
            result[f"{method}/{dtype}"] = hashlib.sha256(tensor.region().tobytes()).hexdigest()
    return result


if __name__ == "__main__":
    if sys.argv[1:] == ["reference"]:
        stream.kernel = None
    print(json.dumps(digests(), sort_keys=True))
