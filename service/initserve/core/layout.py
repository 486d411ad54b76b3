"""Weight layouts and fans.

initserve generates every tensor in the *canonical* (PyTorch) layout
``[out, in, *kernel]``. A Keras or JAX layout ``[*kernel, in, out]`` is the same
tensor with its axes permuted, so one (seed, name) gives the same weights in
every framework, and fans agree by construction.

Fans (PyTorch ``_calculate_fan_in_and_fan_out``, Keras ``compute_fans``, JAX
``_compute_fans``): with receptive field ``rf`` = product of the kernel dims,
``fan_in = in * rf`` and ``fan_out = out * rf``. Fewer than two dimensions is an
error in the torch and jax layouts; Keras uses ``fan_in = fan_out = n`` for a
1-D shape ``[n]`` and 1 for a 0-D shape, and so does layout "keras".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from initserve.core.errors import SpecError

Layout = Literal["torch", "keras", "jax"]
LAYOUTS: tuple[Layout, ...] = ("torch", "keras", "jax")


@dataclass(frozen=True)
class Fans:
    fan_in: int
    fan_out: int
    receptive_field: int


def canonical_axes(ndim: int, layout: Layout) -> tuple[int, ...]:
    """Axes such that ``tensor = canonical.transpose(axes)``.

    Identity for the torch layout and for tensors of fewer than 2 dims;
    ``(2, ..., ndim - 1, 1, 0)`` for keras/jax (``[*k, in, out]`` from ``[out, in, *k]``).
    """
    if layout == "torch" or ndim < 2:
        return tuple(range(ndim))
    return (*range(2, ndim), 1, 0)


def canonical_shape(shape: tuple[int, ...], layout: Layout) -> tuple[int, ...]:
    """The canonical ``[out, in, *kernel]`` shape of a tensor in ``layout``."""
    axes = canonical_axes(len(shape), layout)
    result = [0] * len(shape)
    for position, axis in enumerate(axes):
        result[axis] = shape[position]
    return tuple(result)


def compute_fans(shape: tuple[int, ...], layout: Layout) -> Fans:
    """fan_in, fan_out and receptive field of ``shape`` in ``layout``."""
    if len(shape) < 2:
        if layout == "keras":
            n = shape[0] if shape else 1
            return Fans(n, n, 1)
        raise SpecError(
            "shape",
            list(shape),
            f"fan_in/fan_out need a tensor of at least 2 dimensions in layout {layout!r} "
            "(layout 'keras' follows Keras and accepts 0-D and 1-D shapes)",
        )
    out_features, in_features, *kernel = canonical_shape(shape, layout)
    receptive_field = math.prod(kernel)
    return Fans(in_features * receptive_field, out_features * receptive_field, receptive_field)
