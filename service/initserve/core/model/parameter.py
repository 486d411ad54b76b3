"""What a framework's layer holds: its parameters, their shapes and how the framework fills them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["weight", "bias", "state"]
"""``weight``: kernels, embeddings, recurrent and projection matrices, norm scales; ``bias``: additive
terms, norm shifts; ``state``: buffers such as running statistics (never touched by a scheme)."""

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Init:
    """An initialization: a method of the catalogue, its parameters, and rows zeroed afterwards."""

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    zero_rows: Ranges = ()


ZEROS = Init("zeros")
ONES = Init("ones")


@dataclass(frozen=True)
class Parameter:
    """One tensor of a layer, as its framework names, shapes and initializes it.

    ``path`` is the name inside the layer (``weight``, ``out_proj.weight``, ``lstm_cell/kernel``).
    ``schemed`` is false for tensors a model-wide scheme leaves alone (norm scales and shifts,
    running statistics). ``zero_rows`` are zeroed whatever the initialization (torch's
    ``padding_idx``). ``matrix``: generated as this 2-D matrix and reshaped (Flax ``DenseGeneral``
    kernels, whose fans are those of the flattened matrix). ``collection``: Flax variable collection.
    """

    path: str
    shape: tuple[int, ...]
    role: Role
    default: Init
    schemed: bool = True
    dtype: str | None = None
    zero_rows: Ranges = ()
    matrix: tuple[int, int] | None = None
    collection: str = "params"


def scale_and_shift(shape: tuple[int, ...], scale: str, shift: str | None) -> list[Parameter]:
    """A normalization's learnable scale (ones) and shift (zeros, when it has one); schemes leave them alone."""
    params = [Parameter(scale, shape, "weight", ONES, schemed=False)]
    if shift is not None:
        params.append(Parameter(shift, shape, "bias", ZEROS, schemed=False))
    return params
