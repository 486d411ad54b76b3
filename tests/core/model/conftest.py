"""Shared helpers for the model tests: a tensor's bytes, and the bytes of its canonical spec re-resolved."""

from __future__ import annotations

import numpy as np
import pytest

from initserve.core import SpecError, resolve
from initserve.core.model import Model, ModelTensor


def model_bytes(tensor: ModelTensor) -> bytes:
    """The row-major bytes a model serves for ``tensor`` (streamed, as the formats do)."""
    return b"".join(chunk.tobytes() for chunk in tensor.iter_flat(0, tensor.numel))


def values(tensor: ModelTensor) -> np.ndarray:
    """The generated values of ``tensor`` in its framework shape (float64 for float dtypes)."""
    flat = np.concatenate([np.empty(0, np.float64), *tensor.iter_flat(0, tensor.numel)])
    return flat.reshape(tensor.shape)


def spec_bytes(tensor: ModelTensor) -> bytes:
    """The bytes of ``resolve(**canonical spec)``: what ``/v1/tensor`` gives for the same spec."""
    spec = tensor.tensor.spec.canonical()
    alone = resolve(method=spec["method"], shape=spec["shape"], dtype=spec["dtype"], layout=spec["layout"],
                    seed=spec["seed"], name=spec["name"], zero_rows=spec.get("zero_rows"), **spec["params"])
    return alone.region().tobytes()


def by_name(model: Model) -> dict[str, ModelTensor]:
    return {t.name: t for t in model.tensors}


def spec_error(call: object, *args: object, **kwargs: object) -> SpecError:
    """The :class:`SpecError` raised by ``call(*args, **kwargs)``."""
    assert callable(call)
    with pytest.raises(SpecError) as raised:
        call(*args, **kwargs)
    return raised.value
