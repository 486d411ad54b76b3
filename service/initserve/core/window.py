"""Windows of a tensor: a box of it (``slice``) or one part of a ``torch.tensor_split`` (``shard``).

:func:`slice_box` and :func:`shard_box` validate a request (raising :class:`SpecError` naming the
field) and return the box; :class:`Window` presents that box of a :class:`Tensor` to the encoders as a
tensor of its own (a :class:`~initserve.formats.TensorSource`), streamed row-major in bounded chunks.

Element-wise methods generate only the window's elements (``Tensor.region`` computes just the box);
orthogonal, sparse and delta_orthogonal build their whole matrix once per :class:`Tensor` and slice it.
Concatenating every shard along ``dim`` gives exactly the full tensor, for every method.

With both, the shard is taken within the slice: ``shard_box`` applies to the slice's extents.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from initserve.core import deadline
from initserve.core.dtypes import STORAGE
from initserve.core.errors import SpecError
from initserve.core.plans import Box
from initserve.core.tensor import CHUNK_ELEMENTS, Tensor, flat_boxes

WINDOW_METADATA = "initserve.window"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def slice_box(shape: Sequence[int], slices: Any) -> Box:
    """The box of ``slices`` (``[start, stop]`` per leading dimension; missing trailing dimensions: whole)."""
    if not isinstance(slices, list | tuple) or len(slices) > len(shape):
        raise SpecError("slice", slices, f"must be a list of at most {len(shape)} [start, stop] pairs "
                        "(one per leading dimension of the shape)")
    box: list[tuple[int, int]] = []
    for axis, pair in enumerate(slices):
        n = shape[axis]
        valid = isinstance(pair, list | tuple) and len(pair) == 2 and all(_is_int(v) for v in pair)
        if not valid or not 0 <= pair[0] <= pair[1] <= n:
            raise SpecError("slice", [list(p) if isinstance(p, list | tuple) else p for p in slices],
                            f"dimension {axis}: {pair!r} is not a [start, stop] pair with "
                            f"0 <= start <= stop <= {n}")
        box.append((pair[0], pair[1]))
    return (*box, *((0, n) for n in shape[len(slices):]))


def split_bounds(n: int, index: int, count: int) -> tuple[int, int]:
    """``[start, stop)`` of part ``index`` of ``torch.tensor_split`` into ``count`` parts of a length-``n`` axis.

    The first ``n % count`` parts have ``n // count + 1`` elements, the others ``n // count``.
    """
    size, extra = divmod(n, count)
    start = index * size + min(index, extra)
    return start, start + size + (1 if index < extra else 0)


def shard_box(shape: Sequence[int], dim: Any, index: Any, count: Any) -> Box:
    """The box of shard ``index`` of ``count`` along ``dim`` (negative ``dim`` counts from the end, as torch)."""
    ndim = len(shape)
    if not _is_int(dim) or not -ndim <= dim < ndim:
        raise SpecError("shard.dim", dim, f"must be an integer in {-ndim} … {ndim - 1} (the tensor has {ndim} "
                        "dimensions)" if ndim else "a 0-D tensor cannot be sharded")
    if not _is_int(count) or count < 1:
        raise SpecError("shard.count", count, "must be an integer >= 1")
    if not _is_int(index) or not 0 <= index < count:
        raise SpecError("shard.index", index, f"must be an integer in 0 … {count - 1}")
    axis = dim % ndim
    box = [(0, n) for n in shape]
    box[axis] = split_bounds(shape[axis], index, count)
    return tuple(box)


def window_box(shape: Sequence[int], slices: Any = None, shard: Any = None) -> Box | None:
    """The box of a ``slice`` and/or a ``shard`` (``{"dim", "index", "count"}``, taken within the slice).

    ``None`` when neither is given, and when the window is the whole tensor: the same bytes are then one
    answer (one ETag, one canonical URL), not two.
    """
    if slices is None and shard is None:
        return None
    box = slice_box(shape, slices) if slices is not None else tuple((0, n) for n in shape)
    if shard is not None:
        if not isinstance(shard, dict) or set(shard) != {"dim", "index", "count"}:
            raise SpecError("shard", shard, 'must be {"dim": int, "index": int, "count": int}')
        within = shard_box([b - a for a, b in box], shard["dim"], shard["index"], shard["count"])
        box = tuple((a + start, a + stop) for (a, _), (start, stop) in zip(box, within, strict=True))
    return None if all(pair == (0, n) for pair, n in zip(box, shape, strict=True)) else box


def box_json(box: Box) -> str:
    """The window as compact JSON: ``{"box":[[start,stop],…]}``."""
    return json.dumps({"box": [list(pair) for pair in box]}, separators=(",", ":"))


@dataclass(frozen=True)
class Window:
    """The box ``box`` of ``tensor``, seen as a tensor (a :class:`~initserve.formats.TensorSource`).

    ``view`` is the shape the box refers to when it differs from ``tensor.shape`` (a reshape of the same
    row-major elements, as Flax's DenseGeneral kernels); its elements are then fetched with ``Tensor.take``.
    """

    tensor: Tensor
    box: Box
    view: tuple[int, ...] | None = None

    @property
    def name(self) -> str:
        return self.tensor.name

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(stop - start for start, stop in self.box)

    @property
    def dtype(self) -> str:
        return self.tensor.dtype

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def metadata(self) -> dict[str, str]:
        return {**self.tensor.metadata, WINDOW_METADATA: box_json(self.box)}

    def _part(self, sub: Box) -> np.ndarray:
        """Values of ``sub`` (a box in window coordinates), flattened."""
        box = tuple((a + start, a + stop) for (a, _), (start, stop) in zip(self.box, sub, strict=True))
        if self.view is None or self.view == self.tensor.shape:
            return self.tensor.region(box).ravel()
        grid = np.meshgrid(*(np.arange(a, b) for a, b in box), indexing="ij")
        flat = np.ravel_multi_index(tuple(grid), self.view).ravel() if box else np.zeros(1, np.int64)
        return self.tensor.take(flat)

    def region(self) -> np.ndarray:
        """The window's values, in its shape."""
        return self._part(tuple((0, n) for n in self.shape)).reshape(self.shape)

    def iter_flat(self, start: int = 0, stop: int | None = None, chunk: int = CHUNK_ELEMENTS) -> Iterator[np.ndarray]:
        """Row-major elements ``[start, stop)`` of the window in 1-D chunks of at most ``chunk`` elements."""
        stop = self.numel if stop is None else stop
        for begin in range(start, stop, chunk):
            deadline.check()
            end = min(stop, begin + chunk)
            parts = [self._part(b) for b in flat_boxes(self.shape, begin, end)]
            yield np.concatenate(parts) if parts else np.empty(0, STORAGE[self.dtype])
