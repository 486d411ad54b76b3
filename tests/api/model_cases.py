"""Shared helpers for the ``POST /v1/model`` tests: requests, and independent readers of the answers."""

from __future__ import annotations

import io
import itertools
import json
import struct
from typing import Any

import numpy as np

from initserve.api.errors import PROBLEM_MEDIA_TYPE

__all__ = [
    "ANY",
    "MLP_SIZES",
    "ST_DTYPES",
    "assert_model_problem",
    "bf16_bits",
    "build_safetensors",
    "header_of",
    "linear",
    "load_npz",
    "mlp",
    "post_model",
    "read_tensors",
    "slices_of",
]

ANY = object()
"""A problem ``value`` the test does not pin down."""

MLP_SIZES = (10, 64, 32, 1)
"""The classic MLP 10→64→32→1."""

# safetensors dtype codes → numpy storage (bfloat16 as its uint16 bit pattern).
ST_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
}


def linear(in_features: int, out_features: int, **extra: Any) -> dict[str, Any]:
    return {"type": "linear", "in_features": in_features, "out_features": out_features, **extra}


def mlp(**extra: Any) -> dict[str, Any]:
    """The 10→64→32→1 MLP request (``extra``: top-level fields such as framework, scheme, seed)."""
    layers = [linear(a, b) for a, b in itertools.pairwise(MLP_SIZES)]
    return {"layers": layers, **extra}


def post_model(client: Any, body: Any, **params: str) -> Any:
    """POST ``body`` (a dict as JSON, a str verbatim) to /v1/model with query ``params``."""
    if isinstance(body, str):
        return client.post("/v1/model", params=params, content=body, headers={"content-type": "application/json"})
    return client.post("/v1/model", params=params, json=body)


def header_of(content: bytes) -> tuple[dict[str, Any], int]:
    """The parsed safetensors header (key order kept) and where the data buffer starts."""
    (length,) = struct.unpack("<Q", content[:8])
    header: dict[str, Any] = json.loads(content[8 : 8 + length])
    return header, 8 + length


def slices_of(content: bytes) -> dict[str, bytes]:
    """Each tensor's bytes in a safetensors file, in header order."""
    header, start = header_of(content)
    return {
        name: content[start + entry["data_offsets"][0] : start + entry["data_offsets"][1]]
        for name, entry in header.items()
        if name != "__metadata__"
    }


def read_tensors(content: bytes) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file with its shape (bfloat16 as uint16 bits), in header order."""
    header, _ = header_of(content)
    return {
        name: np.frombuffer(data, ST_DTYPES[header[name]["dtype"]]).reshape(header[name]["shape"])
        for name, data in slices_of(content).items()
    }


def build_safetensors(tensors: dict[str, tuple[str, list[int], bytes]]) -> bytes:
    """A safetensors file from ``name → (dtype code, shape, raw bytes)`` (for dtypes numpy cannot save, BF16)."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(data for _, _, data in tensors.values())


def load_npz(content: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(content), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bit patterns, round to nearest even (the values here are finite)."""
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2")


def assert_model_problem(response: Any, status: int, field: str, value: Any = ANY) -> dict[str, Any]:
    """A problem+json answer (never a 500) naming ``field`` (and ``value`` unless :data:`ANY`)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "field", "value"} <= problem.keys()
    assert problem["status"] == status
    assert problem["field"] == field, problem
    assert problem["detail"].startswith(f"{field}="), problem["detail"]
    if value is not ANY:
        assert problem["value"] == value, problem
    return problem
