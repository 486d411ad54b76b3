"""Checking received models against their manifest (``POST /v1/model?format=manifest`` of the same request).

The manifest gives, per tensor, its ``byte_range`` in the safetensors answer and the ``sha256`` of its bytes
(plus ``safetensors_length``). :class:`RangeHasher` checks a safetensors body as it streams past, chunk by
chunk, without holding it; :func:`verify_arrays` checks decoded arrays (npz and json answers). Any
difference raises :class:`IntegrityError` naming the tensor.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from initserve_client.arrays import Entry, json_model_arrays, little_endian_bytes
from initserve_client.errors import IntegrityError


@dataclass(frozen=True)
class Expected:
    """What the manifest says about one tensor."""

    name: str
    dtype: str
    start: int
    end: int
    sha256: str


def expected_tensors(manifest: Mapping[str, Any]) -> list[Expected]:
    """The manifest's tensors, in order (:class:`IntegrityError` when it is not a manifest)."""
    try:
        return [Expected(str(t["name"]), str(t["dtype"]), int(t["byte_range"][0]), int(t["byte_range"][1]),
                         str(t["sha256"])) for t in manifest["tensors"]]
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise IntegrityError(f"the manifest lacks tensors with byte_range and sha256 ({exc!r})") from None


def _mismatch(name: str, expected: str, actual: str) -> IntegrityError:
    return IntegrityError(f"tensor {name!r}: SHA-256 {actual} differs from the manifest's {expected}",
                          name=name, expected=expected, actual=actual)


class RangeHasher:
    """Hashes each tensor's byte range of a safetensors body fed in order, in chunks of any size."""

    def __init__(self, manifest: Mapping[str, Any]) -> None:
        self.tensors = expected_tensors(manifest)
        self.length = int(manifest.get("safetensors_length", self.tensors[-1].end if self.tensors else 0))
        self.reset()

    def reset(self) -> None:
        """Forget everything fed (a retried download starts over)."""
        self._position = 0
        self._index = 0
        self._digest = hashlib.sha256()

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        """Feed the next bytes of the body."""
        view = memoryview(chunk)
        start = self._position
        self._position += len(view)
        while self._index < len(self.tensors):
            tensor = self.tensors[self._index]
            lo, hi = max(tensor.start, start), min(tensor.end, self._position)
            if lo < hi:
                self._digest.update(view[lo - start : hi - start])
            if tensor.end > self._position:
                break
            self._close(tensor)

    def _close(self, tensor: Expected) -> None:
        actual = self._digest.hexdigest()
        if actual != tensor.sha256:
            raise _mismatch(tensor.name, tensor.sha256, actual)
        self._index += 1
        self._digest = hashlib.sha256()

    def finish(self) -> None:
        """Check that the body had exactly the manifest's length (every tensor was checked on the way)."""
        if self._position != self.length or self._index != len(self.tensors):
            raise IntegrityError(f"the safetensors body has {self._position} bytes, the manifest says {self.length}")


def verify_buffer(manifest: Mapping[str, Any], buffer: bytes | bytearray | memoryview) -> None:
    """Check a whole safetensors body against ``manifest``."""
    hasher = RangeHasher(manifest)
    hasher.update(buffer)
    hasher.finish()


def verify_names(manifest: Mapping[str, Any], names: list[str]) -> None:
    """Check that the answer holds the manifest's tensors, in its order."""
    expected = [tensor.name for tensor in expected_tensors(manifest)]
    if names != expected:
        raise IntegrityError(f"the answer holds tensors {names}, the manifest lists {expected}")


def verify_arrays(manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray[Any, Any]]) -> None:
    """Check decoded arrays (their bytes as the service stores them) against ``manifest``."""
    verify_names(manifest, list(arrays))
    for tensor in expected_tensors(manifest):
        actual = hashlib.sha256(little_endian_bytes(arrays[tensor.name], tensor.dtype)).hexdigest()
        if actual != tensor.sha256:
            raise _mismatch(tensor.name, tensor.sha256, actual)


def verify_layout(manifest: Mapping[str, Any], entries: Sequence[Entry]) -> None:
    """Check that a safetensors header places the manifest's tensors, in its order, at its byte ranges."""
    verify_names(manifest, [entry.name for entry in entries])
    for entry, tensor in zip(entries, expected_tensors(manifest), strict=True):
        if (entry.start, entry.end) != (tensor.start, tensor.end):
            raise IntegrityError(f"tensor {entry.name!r} is at bytes [{entry.start}, {entry.end}), the manifest "
                                 f"says [{tensor.start}, {tensor.end})", name=entry.name)


def verify_file(manifest: Mapping[str, Any], fmt: str, path: str | os.PathLike[str]) -> None:
    """Check a downloaded ``npz`` or ``json`` model file by decoding it (safetensors bodies are checked while
    they stream, by :class:`RangeHasher`)."""
    if fmt == "npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
            raise IntegrityError(f"malformed npz answer ({exc})") from None
    elif fmt == "json":
        try:
            with open(path, "rb") as file:
                document = json.load(file)
        except ValueError as exc:
            raise IntegrityError(f"malformed JSON answer ({exc})") from None
        arrays = json_model_arrays(document)
    else:
        return
    verify_arrays(manifest, arrays)
