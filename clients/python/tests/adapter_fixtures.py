"""Helpers for the framework adapter tests: a raw ``/v1/model`` oracle.

The adapter tests run the adapters through the ``client`` fixture of ``conftest.py``
(the service in-process) and compare with what the ``server`` fixture (a real
``initserve serve`` process) answers to plain httpx, parsed here without the
client: the adapters are checked against the service's bytes, not against the
client's decoding of them.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

_NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64}


@dataclass(frozen=True)
class RawTensor:
    """One tensor of a safetensors answer: its dtype tag (``F32``, ``BF16`` …), shape and bytes."""

    dtype: str
    shape: tuple[int, ...]
    data: bytes

    def numpy(self) -> np.ndarray[Any, Any]:
        """The values (bfloat16 widened to float32, exactly)."""
        if self.dtype == "BF16":
            bits = np.frombuffer(self.data, dtype="<u2").astype(np.uint32) << 16
            return bits.view(np.float32).reshape(self.shape)
        return np.frombuffer(self.data, dtype=np.dtype(_NUMPY_DTYPES[self.dtype]).newbyteorder("<")).reshape(
            self.shape)


def parse_safetensors(blob: bytes) -> dict[str, RawTensor]:
    """The tensors of a safetensors file, in file order (``__metadata__`` dropped)."""
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length])
    body = blob[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, stop = entry["data_offsets"]
        tensors[name] = RawTensor(entry["dtype"], tuple(entry["shape"]), body[start:stop])
    return tensors


def raw_model(url: str, layers: Sequence[Mapping[str, Any]], **request: Any) -> dict[str, RawTensor]:
    """``POST /v1/model`` (safetensors) with plain httpx: the service's own bytes per tensor."""
    response = httpx.post(f"{url}/v1/model", json={"layers": list(layers), **request}, timeout=60)
    assert response.status_code == 200, response.text
    return parse_safetensors(response.content)
