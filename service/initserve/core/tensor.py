"""A resolved tensor: canonical spec, key, plan — and its values, any region at a time.

:func:`resolve` validates a request (raising :class:`SpecError` before any
work) and returns a :class:`Tensor`. ``Tensor.region(box)`` computes a box of
the tensor in its own layout; ``Tensor.iter_flat(start, stop)`` streams
row-major elements in bounded chunks. Both equal the corresponding part of the
full tensor, bit for bit, for every method.

``zero_rows`` (ranges ``[start, stop)`` along the first axis of the shape as
given) are set to zero after the method has filled the tensor: torch's
``nn.Embedding(padding_idx=p)`` is ``normal`` with ``zero_rows=[[p, p + 1]]``,
and Keras' LSTM bias with ``unit_forget_bias`` is ``ones`` with every row but
the forget gate's zeroed. The other values do not change.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from initserve.core import deadline
from initserve.core.distributions import Theory
from initserve.core.dtypes import DTYPES, INTEGER_DTYPES, LARGEST, round_to
from initserve.core.errors import SpecError
from initserve.core.layout import LAYOUTS, Layout, canonical_axes
from initserve.core.methods import Geometry, lookup
from initserve.core.params import resolve_params
from initserve.core.plans import Box, Dense, Plan
from initserve.core.stream import derive_key

ALGORITHM_VERSION = "2"
MAX_NDIM = 8
MAX_DIM = 2**63 - 1
"""The largest dimension (int64's largest value)."""
MAX_SEED = 2**64 - 1
MAX_NAME_LENGTH = 1024
CHUNK_ELEMENTS = 1 << 20
MAX_ZERO_ROW_RANGES = 1024


@dataclass(frozen=True)
class TensorSpec:
    """The canonical description of a tensor: its bytes are a pure function of it."""

    method: str
    params: Mapping[str, Any]
    shape: tuple[int, ...]
    dtype: str = "float32"
    layout: Layout = "torch"
    seed: int = 0
    name: str = ""
    zero_rows: tuple[tuple[int, int], ...] = ()

    def canonical(self) -> dict[str, Any]:
        """JSON-ready form; unset optional parameters and empty ``zero_rows`` are omitted."""
        params = {k: v for k, v in sorted(self.params.items()) if v is not None}
        canonical = {"method": self.method, "params": params, "shape": list(self.shape), "dtype": self.dtype,
                     "layout": self.layout, "seed": self.seed, "name": self.name}
        if self.zero_rows:
            canonical["zero_rows"] = [list(rows) for rows in self.zero_rows]
        return canonical


@dataclass
class Tensor:
    """A resolved tensor, generated lazily."""

    spec: TensorSpec
    plan: Plan
    key: tuple[int, int] = field(init=False)

    def __post_init__(self) -> None:
        self.key = derive_key(self.spec.seed, self.spec.name)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.spec.shape

    @property
    def dtype(self) -> str:
        return self.spec.dtype

    @property
    def numel(self) -> int:
        return math.prod(self.spec.shape)

    @property
    def theory(self) -> Theory:
        """The method's theory, with the zeroed rows' zeros mixed in.

        Random laws give every row the same law, so the zeroed share scales the moments; exact
        tensors (eye, dirac …) subtract what the zeroed rows held.
        """
        theory = self.plan.theory()
        zeroed = sum(stop - start for start, stop in self.spec.zero_rows)
        if not zeroed:
            return theory
        second_moment = theory.variance + theory.mean * theory.mean
        if theory.exact:
            removed = np.concatenate([self.region(((start, stop), *((0, n) for n in self.spec.shape[1:])),
                                                  zero_rows=False).ravel().astype(np.float64)
                                      for start, stop in self.spec.zero_rows])
            total = self.numel
            mean = theory.mean - float(removed.sum()) / total
            second_moment -= float((removed * removed).sum()) / total
        else:
            kept = 1.0 - zeroed / self.spec.shape[0]
            mean, second_moment = kept * theory.mean, kept * second_moment
        return Theory(mean, second_moment - mean * mean, min(theory.low, 0.0), max(theory.high, 0.0), theory.exact)

    @property
    def dense_matrix(self) -> tuple[int, int] | None:
        """Rows × cols of the matrix a whole-tensor method (orthogonal, sparse, …) must build, else ``None``."""
        return self.plan.matrix if isinstance(self.plan, Dense) else None

    @property
    def metadata(self) -> dict[str, str]:
        """String metadata for file formats: the canonical spec and the algorithm version."""
        return {"initserve.spec": json.dumps(self.spec.canonical(), separators=(",", ":")),
                "initserve.algorithm_version": ALGORITHM_VERSION}

    @cached_property
    def _canonical_shape(self) -> tuple[int, ...]:
        return Geometry(self.spec.shape, self.spec.layout).canonical

    @cached_property
    def axes(self) -> tuple[int, ...]:
        """The layout permutation: this tensor is ``canonical.transpose(axes)``."""
        return canonical_axes(len(self.spec.shape), self.spec.layout)

    @cached_property
    def _dense(self) -> np.ndarray:
        assert isinstance(self.plan, Dense)
        return self.plan.build(self.key).reshape(self._canonical_shape)

    def build(self) -> None:
        """Build the whole matrix of a whole-matrix method now (element-wise methods: nothing to do)."""
        if isinstance(self.plan, Dense):
            self._dense  # noqa: B018 - the cached property is the point

    def release(self) -> None:
        """Drop the built matrix (rebuilt, identical, if asked again): a model goes through its tensors
        one after another, and should hold one whole matrix at a time, not all of them."""
        self.__dict__.pop("_dense", None)

    def _canonical_region(self, box: Box) -> np.ndarray:
        if isinstance(self.plan, Dense):
            values = round_to(self._dense[tuple(slice(start, stop) for start, stop in box)], self.spec.dtype)
            # float64 rounding is a view of the built matrix: the caller (zero_rows) must not write into it
            return values.copy() if np.may_share_memory(values, self._dense) else values
        return self.plan.region(self.key, self._canonical_shape, box, self.spec.dtype)

    def region(self, box: Box | None = None, *, zero_rows: bool = True) -> np.ndarray:
        """Values of ``box`` (per-dim ``(start, stop)``, default: everything) in storage dtype.

        ``zero_rows=False``: the method's values before the rows are zeroed (for the statistics' checks).
        """
        if box is None:
            box = tuple((0, n) for n in self.spec.shape)
        canonical_box: list[tuple[int, int]] = [(0, 0)] * len(box)
        for position, axis in enumerate(self.axes):
            canonical_box[axis] = box[position]
        values = np.asarray(self._canonical_region(tuple(canonical_box)).transpose(self.axes), order="C")
        for start, stop in self.spec.zero_rows if zero_rows else ():
            low, high = max(start, box[0][0]), min(stop, box[0][1])
            if low < high:
                values[low - box[0][0] : high - box[0][0]] = 0
        return values

    def take(self, flat: np.ndarray) -> np.ndarray:
        """Values at row-major flat indices ``flat`` (in the tensor's own layout), in storage dtype.

        Pointwise methods compute only those elements; whole-matrix methods slice the built tensor.
        """
        flat = np.asarray(flat, dtype=np.int64)
        if isinstance(self.plan, Dense) or not self.spec.shape:
            return np.asarray(self.region().ravel()[flat])
        index = np.unravel_index(flat, self.spec.shape)
        canonical = [index[self.axes.index(axis)] for axis in range(len(self.spec.shape))]
        starts = np.ravel_multi_index(canonical, self._canonical_shape).astype(np.int64)
        values = round_to(self.plan.values(self.key, starts, 1), self.spec.dtype)
        for start, stop in self.spec.zero_rows:
            values[(index[0] >= start) & (index[0] < stop)] = 0
        return values

    def iter_flat(self, start: int = 0, stop: int | None = None,
                  chunk: int = CHUNK_ELEMENTS) -> Iterator[np.ndarray]:
        """Row-major elements ``[start, stop)`` in 1-D chunks of at most ``chunk`` elements (a chunk of one box is
        that box's array itself, not a copy: read-only for the caller)."""
        stop = self.numel if stop is None else stop
        for begin in range(start, stop, chunk):
            deadline.check()
            end = min(stop, begin + chunk)
            parts = [self.region(b).ravel() for b in flat_boxes(self.spec.shape, begin, end)]
            yield parts[0] if len(parts) == 1 else np.concatenate(parts)


def flat_boxes(shape: tuple[int, ...], start: int, stop: int) -> list[Box]:
    """Boxes whose row-major concatenation is exactly elements ``[start, stop)`` of ``shape``."""
    if start >= stop:
        return []
    if not shape:
        return [()]
    inner = math.prod(shape[1:])
    first, last = start // inner, (stop - 1) // inner
    rest_full = tuple((0, n) for n in shape[1:])
    if start % inner == 0 and stop % inner == 0:
        return [((first, last + 1), *rest_full)]
    if first == last:
        offset = first * inner
        return [((first, first + 1), *b) for b in flat_boxes(shape[1:], start - offset, stop - offset)]
    boxes = flat_boxes(shape, start, (first + 1) * inner)
    if last > first + 1:
        boxes.append(((first + 1, last), *rest_full))
    boxes += flat_boxes(shape, last * inner, stop)
    return boxes


def check_seed(seed: Any) -> None:
    """Seeds are integers in 0 … 2^64−1."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SpecError("seed", seed, "must be an integer in 0 … 2^64−1")


def check_dtype(dtype: Any) -> None:
    """A dtype of :data:`DTYPES`."""
    if dtype not in DTYPES:
        raise SpecError("dtype", dtype, f"must be one of: {', '.join(DTYPES)}")


def check_shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list | tuple) or len(shape) > MAX_NDIM:
        raise SpecError("shape", shape, f"must be a list of at most {MAX_NDIM} non-negative integers")
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise SpecError("shape", list(shape), f"dimension {n!r} is not a non-negative integer")
        if n > MAX_DIM:  # past int64, numpy cannot index it, and fans past float64's range were OverflowErrors
            raise SpecError("shape", list(shape), f"dimension {n} is over 2^63−1")
    return tuple(shape)


def _check_range(plan: Plan, params: Mapping[str, Any], dtype: str) -> None:
    """Refuse parameters whose values would overflow ``dtype`` (never a silent ±inf or NaN).

    The error names the numeric parameter of largest magnitude, the likely culprit.
    """
    limit = LARGEST[dtype]
    largest = plan.largest()
    if largest <= limit:
        return
    numeric = {k: v for k, v in params.items() if isinstance(v, float)}
    field = max(numeric, key=lambda k: abs(numeric[k])) if numeric else "dtype"
    raise SpecError(field, numeric.get(field, dtype),
                    f"values would reach ±{largest:.4g}, beyond the largest {dtype} ({limit:.4g})")


def _check_zero_rows(zero_rows: Any, shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """``[[start, stop], …]`` within the first axis, sorted and merged."""
    if zero_rows is None:
        return ()
    if not isinstance(zero_rows, list | tuple) or len(zero_rows) > MAX_ZERO_ROW_RANGES:
        raise SpecError("zero_rows", zero_rows, f"must be a list of at most {MAX_ZERO_ROW_RANGES} [start, stop] pairs")
    rows = shape[0] if shape else 0
    ranges: list[tuple[int, int]] = []
    for pair in zero_rows:
        valid = isinstance(pair, list | tuple) and len(pair) == 2 and all(
            isinstance(n, int) and not isinstance(n, bool) for n in pair)
        if not valid or not 0 <= pair[0] < pair[1] <= rows:
            raise SpecError("zero_rows", list(zero_rows),
                            f"{pair!r} is not a [start, stop] pair with 0 <= start < stop <= {rows} "
                            "(the length of the first axis)")
        ranges.append((pair[0], pair[1]))
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
        else:
            merged.append((start, stop))
    return tuple(merged)


def _check_integer(plan: Plan, method: str, dtype: str) -> None:
    """An integer dtype takes only exact, integer-valued methods (the conversion must be exact)."""
    theory = plan.theory()
    if dtype in INTEGER_DTYPES and not (theory.exact and theory.low.is_integer() and theory.high.is_integer()):
        raise SpecError("dtype", dtype, f"method {method!r} with these parameters does not produce integers; "
                        "integer dtypes take zeros, ones, or constant/eye/dirac with integer values")


def resolve(method: str, shape: Any, *, dtype: str = "float32", layout: str = "torch", seed: int = 0,
            name: str = "", zero_rows: Any = None, **params: Any) -> Tensor:
    """Validate a request and return its :class:`Tensor` (nothing is generated yet)."""
    entry = lookup(method)
    dims = check_shape(shape)
    check_dtype(dtype)
    if layout not in LAYOUTS:
        raise SpecError("layout", layout, f"must be one of: {', '.join(LAYOUTS)}")
    check_seed(seed)
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
        raise SpecError("name", name, f"must be a string of at most {MAX_NAME_LENGTH} characters")
    rows = _check_zero_rows(zero_rows, dims)
    resolved = resolve_params(entry.name, entry.params, params)
    geometry = Geometry(dims, layout)
    plan = entry.build(resolved, geometry)
    _check_integer(plan, entry.name, dtype)
    _check_range(plan, resolved, dtype)
    spec = TensorSpec(entry.name, resolved, dims, dtype, layout, seed, name, rows)
    return Tensor(spec, plan)
