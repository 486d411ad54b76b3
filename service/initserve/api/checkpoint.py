"""Pretrained initialization: tensors of an uploaded safetensors checkpoint replace generated ones.

A checkpoint tensor whose name and shape match a model tensor is copied (converted
to the model tensor's dtype with the service's one rounding rule: through float64,
then :func:`~initserve.core.dtypes.round_to`; an int64 tensor takes only integer
data). A name that matches with another shape is a 422 naming it, unless
``strict=false``, in which case the model tensor is generated as usual and the
mismatch reported. Checkpoint tensors the model lacks are ignored and reported.

The upload lives in the request's spooled temporary file (unlinked on disk) and is
closed when the answer has been sent: nothing uploaded is kept.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from initserve.core import SpecError
from initserve.core.dtypes import INTEGER_DTYPES, round_to
from initserve.core.model import ModelTensor
from initserve.formats.safetensors_reader import READABLE_DTYPES, StoredTensor, read_header

CHUNK_ELEMENTS = 1 << 20


@dataclass
class Upload:
    """A seekable uploaded file, read under a lock (streams may run on worker threads)."""

    file: IO[bytes]
    size: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, offset: int, length: int) -> bytes:
        with self.lock:
            self.file.seek(offset)
            return self.file.read(length)


@dataclass(frozen=True)
class CheckpointTensor:
    """A model tensor whose values come from the checkpoint (a :class:`~initserve.formats.TensorSource`)."""

    replaced: ModelTensor
    stored: StoredTensor
    upload: Upload

    @property
    def name(self) -> str:
        return self.replaced.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.replaced.shape

    @property
    def dtype(self) -> str:
        return self.replaced.dtype

    @property
    def metadata(self) -> dict[str, str]:
        return {}

    @property
    def layer(self) -> str:
        return self.replaced.layer

    @property
    def role(self) -> str:
        return self.replaced.role

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        if self.stored.dtype == "BF16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        if self.dtype in INTEGER_DTYPES:
            return raw.astype("<i8")
        return round_to(raw.astype(np.float64), self.dtype)

    def iter_flat(self, start: int, stop: int) -> Iterator[np.ndarray]:
        stored = READABLE_DTYPES[self.stored.dtype]
        for begin in range(start, stop, CHUNK_ELEMENTS):
            end = min(stop, begin + CHUNK_ELEMENTS)
            data = self.upload.read(self.stored.begin + begin * stored.itemsize, (end - begin) * stored.itemsize)
            yield self._convert(np.frombuffer(data, stored))


@dataclass(frozen=True)
class Applied:
    """The model's sources after the checkpoint, and what happened to each checkpoint tensor."""

    sources: tuple[ModelTensor | CheckpointTensor, ...]
    copied: tuple[str, ...]
    mismatched: tuple[str, ...]
    unused: tuple[str, ...]


def _compatible(tensor: ModelTensor, stored: StoredTensor) -> str | None:
    """Why ``stored`` cannot replace ``tensor``, or ``None``."""
    if stored.shape != tensor.shape:
        return f"checkpoint shape {list(stored.shape)} differs from the model's {list(tensor.shape)}"
    if (tensor.dtype in INTEGER_DTYPES) != (stored.dtype == "I64"):
        return f"checkpoint dtype {stored.dtype} cannot become {tensor.dtype}"
    return None


def apply_checkpoint(tensors: Sequence[ModelTensor], upload: Upload, strict: bool) -> Applied:
    """Replace the model tensors the checkpoint holds (see the module docstring)."""
    stored = read_header(upload.read, upload.size)
    sources: list[ModelTensor | CheckpointTensor] = []
    copied, mismatched = [], []
    for tensor in tensors:
        match = stored.get(tensor.name)
        problem = _compatible(tensor, match) if match is not None else None
        if match is not None and problem is None:
            sources.append(CheckpointTensor(tensor, match, upload))
            copied.append(tensor.name)
            continue
        if problem is not None:
            if strict:
                raise SpecError("checkpoint", tensor.name, f"{problem} (send strict=false to initialize it instead)")
            mismatched.append(tensor.name)
        sources.append(tensor)
    names = {tensor.name for tensor in tensors}
    unused = tuple(name for name in stored if name not in names)
    return Applied(tuple(sources), tuple(copied), tuple(mismatched), unused)
