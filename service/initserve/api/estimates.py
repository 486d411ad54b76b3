"""How much working memory a request will need, estimated before any work (for :mod:`.admission`).

Each figure is an upper bound of the peak *extra* memory of one request, set from measurements: peak of
``tracemalloc`` (numpy's buffers included) over the whole request, and the server's RSS while answering
(Python 3.11, numpy 2, x86-64, ``CHUNK_ELEMENTS`` = 2^20, ``MAX_CHUNK_BYTES`` = 4 MiB). Rerun
``tests/api/test_admission.py::test_estimates_bound_the_measured_peak`` after changing the core.

- **Streamed tensors** hold one chunk at a time whatever their size: a chunk of 2^20 elements peaked at
  16 MiB in float32, 28 MiB in float64, 8–9 MiB in float16/bfloat16, ~6 MiB more in the keras/jax
  layouts (the transposed copy). Bound: ``min(n, 2^20) × (3·itemsize + 8)`` (+ 4 MiB, the output chunk).
  The server's send path adds up to two more output chunks (the chunk in flight — a view of its
  generated buffer, or h11's framing copy when uvicorn runs without httptools — and asyncio's write
  buffer): a live server streaming 2^27 float32 grew by 22–30 MiB RSS, float64 by 46 MiB; and a body of
  several chunks has the next one generated while the last is sent (one more output chunk).
- **Whole-matrix methods** (orthogonal, sparse, delta_orthogonal) build their matrix in float64
  (``rows × cols × 8`` bytes) and keep the canonical tensor (``numel × 8``) while it streams. sparse
  peaked at 6.6 times the matrix (2048²: 211 MiB for a 32 MiB matrix, the priority words and argsort
  indices): bound 8 matrices. orthogonal (m × n, m ≥ n; :mod:`initserve.core.linalg`) holds the Gaussian
  matrix and Q (2 matrices), a block's reflectors three times (``3 · NB · m · 8``) and each thread's tiles
  of the compiled product (0.875 MiB): 4096² measured +266 MiB, the formula's 258 MiB plus the vectors.
  Bound: the formula with 1 MiB per thread, plus 1% of the matrices. Then the tensor.
- **format=json** builds its whole text before answering: at most 15 bytes per float32/float16/bfloat16
  value (``-1.2345678e-38,``), 25 per float64, 21 per int64; meanwhile one chunk is held three times
  as text (orjson's output, its slice, the joined part). Measured on 2^22 elements: float32 79 MiB
  (text 10.9 B/element on average), float64 118 MiB (19.6), int64 48 MiB.
- **Statistics** sample at most ``sample`` elements: 40 B per sampled float32 element, 48 in float64.
  Exactly-checked methods (eye, dirac, constant, orthogonal …) also compare the whole tensor in float64:
  20–58 B per element more (eye 2048²: 120 MiB; dirac 256·256·3·3: 55 MiB). Bound: 48 B per sampled
  element, 64 per element of an exactly-checked tensor, plus the whole-matrix build.
- **Propagation** keeps every layer's weights in float64 and, per layer, the pre-activations,
  activations and gradients (``3 × batch × outputs × 8``); a conv2d's im2col window product and
  backward padding, and the float32 region of the weights being generated, are transients. The bound
  (below) was 1.1–1.4 × the measured peak (4 × 1024² tanh, batch 256: 66 MiB; 20 × 256², batch 2048:
  182 MiB; 3 × conv 16→16 3×3 on 32², batch 64: 129 MiB).
- **Models** stream their tensors one after another, and a whole-matrix tensor drops its matrix once
  streamed: the working set of the largest tensor (checkpoint tensors: a 2^20-element chunk read and
  converted through float64, 40 B per element), plus the JSON text of all tensors for format=json.
  A checkpoint upload itself lives in a spooled temporary file, on disk beyond Starlette's 1 MiB spool.
- Every request: :data:`REQUEST_BYTES` for its parsing and objects; every streamed answer
  :data:`SEND_BYTES` for the server's send path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from initserve.api.checkpoint import CheckpointTensor
from initserve.core import Tensor, Window, linalg
from initserve.core.dtypes import STORAGE
from initserve.core.layout import canonical_shape
from initserve.core.model import Model, ModelTensor
from initserve.core.stats.checks import STRUCTURED
from initserve.core.tensor import CHUNK_ELEMENTS
from initserve.formats import MAX_CHUNK_BYTES

MiB = 1 << 20
REQUEST_BYTES = 1 * MiB
"""Any request: the parsed body, the resolved specs, the answer's objects."""
SEND_BYTES = 2 * MAX_CHUNK_BYTES
"""A streamed answer in the server: the chunk in flight (a view of its buffer with httptools, h11's framing copy
without), and asyncio's copy of what the socket did not take. A body of several chunks also has one chunk
generated ahead (:class:`~.admission._Chunks`)."""
SPARSE_COPIES = 8
"""Peak of sparse's build, in float64 matrices of its size (measured 6.6)."""
THREAD_BYTES = MiB
"""orthogonal: each thread's tiles in the compiled product (0.875 MiB)."""
JSON_TEXT_BYTES = {"float64": 25, "int64": 21}
"""Longest JSON text of one value and its comma; the other dtypes print as float32: 15."""
SAMPLE_BYTES = 48
"""Statistics: per sampled element (measured 40 in float32, 48 in float64)."""
EXACT_CHECK_BYTES = 64
"""Statistics of an exactly-checked method: per element of the whole tensor (measured 20–58)."""
ZEROED_BYTES = 24
"""Statistics of a tensor with ``zero_rows``: per zeroed element (the rows' region, checked, and their theory)."""
CHECKPOINT_BYTES = 40
"""A checkpoint tensor's chunk: the bytes read, their float64 conversion and rounding, per element."""

Source = Tensor | Window | ModelTensor | CheckpointTensor


def _chunk(numel: int, dtype: str) -> int:
    """One streamed chunk of a ``dtype`` tensor of ``numel`` elements, its output chunk included."""
    return min(numel, CHUNK_ELEMENTS) * (3 * STORAGE[dtype].itemsize + 8) + min(numel * 8, MAX_CHUNK_BYTES)


def _dense(tensor: Tensor) -> int:
    """A whole-matrix build and the canonical tensor it keeps (0 for element-wise methods)."""
    sides = tensor.dense_matrix
    if sides is None:
        return 0
    matrix = sides[0] * sides[1] * 8
    if tensor.spec.method == "sparse":
        return SPARSE_COPIES * matrix + tensor.numel * 8
    orthogonal = 2 * matrix + matrix // 50 + 3 * linalg.NB * max(sides) * 8 + linalg.THREADS * THREAD_BYTES
    return orthogonal + tensor.numel * 8


def _json_text(numel: int, dtype: str) -> int:
    """The JSON text of ``numel`` values, and one chunk's transient copies."""
    per_value = JSON_TEXT_BYTES.get(dtype, 15)
    return numel * per_value + min(numel, CHUNK_ELEMENTS) * (3 * per_value + 16)


def source_bytes(source: Source) -> int:
    """Streaming one tensor (or window, or checkpoint tensor): one chunk, and the whole matrix if it has one."""
    if isinstance(source, CheckpointTensor):
        return min(source.replaced.numel, CHUNK_ELEMENTS) * CHECKPOINT_BYTES + MAX_CHUNK_BYTES
    tensor = source if isinstance(source, Tensor) else source.tensor
    numel = source.numel if isinstance(source, Window) else tensor.numel
    return _chunk(numel, tensor.dtype) + _dense(tensor)


def _send(answer_bytes: int) -> int:
    """The send path: two output chunks at most, and never more than twice the answer (a 16 KiB tensor
    must not reserve 8 MiB); plus the chunk generated ahead when the answer has more than one."""
    ahead = MAX_CHUNK_BYTES if answer_bytes > MAX_CHUNK_BYTES else 0
    return min(SEND_BYTES, 2 * answer_bytes) + ahead


def tensor_estimate(source: Tensor | Window, fmt: str) -> int:
    """``/v1/tensor``: the tensor (or window) streamed as ``fmt``."""
    text = _json_text(source.numel, source.dtype) if fmt == "json" else 0
    answer = text or source.numel * STORAGE[source.dtype].itemsize
    return REQUEST_BYTES + _send(answer) + source_bytes(source) + text


def model_estimate(sources: Sequence[Source], fmt: str) -> int:
    """``/v1/model``: the largest tensor's working set (they stream one at a time); for json, all the text."""
    largest = max((source_bytes(source) for source in sources), default=0)
    text = 0
    if fmt == "json":
        text = sum(_json_text(_numel(source), source.dtype) for source in sources)
    answer = text or sum(_numel(source) * STORAGE[source.dtype].itemsize for source in sources)
    return REQUEST_BYTES + _send(answer) + largest + text


def _numel(source: Source) -> int:
    return source.replaced.numel if isinstance(source, CheckpointTensor) else source.numel


def stats_estimate(tensors: Iterable[Tensor], sample: int) -> int:
    """``/v1/stats``: the largest tensor's sample, exact checks and build (tensors are described in turn)."""
    def one(tensor: Tensor) -> int:
        exact = tensor.numel * EXACT_CHECK_BYTES if tensor.spec.method in STRUCTURED else 0
        zeroed = sum(stop - start for start, stop in tensor.spec.zero_rows) * math.prod(tensor.shape[1:])
        return SAMPLE_BYTES * min(tensor.numel, sample) + exact + zeroed * ZEROED_BYTES + _dense(tensor)

    return REQUEST_BYTES + max((one(tensor) for tensor in tensors), default=0)


def propagation_estimate(model: Model, batch: Tensor) -> int:
    """``/v1/stats/propagation``: float64 weights of every layer, three ``batch × outputs`` arrays per layer
    (pre-activations, activations, gradients) and the output gradient, the input twice, and the largest
    transient: generating a weight (its stored region, float64 copy and build), a conv2d's window product
    and backward padding."""
    size, *shape = batch.shape
    kept = 2 * batch.numel * 8
    transient = outputs = 0
    for tensor in model.tensors:
        kept += tensor.numel * 8
        transient = max(transient, tensor.numel * (STORAGE[tensor.dtype].itemsize + 8) + _dense(tensor.tensor))
        if tensor.role != "weight":
            continue
        out, *rest = canonical_shape(tensor.tensor.shape, tensor.tensor.spec.layout)
        spatial = math.prod(shape[1:]) if len(rest) > 1 else 1  # conv2d keeps height and width
        outputs = size * out * spatial
        kept += 3 * outputs * 8
        if len(rest) > 1:  # the windows (batch × fan_in × height × width) and the padded input gradient
            transient = max(transient, 2 * size * math.prod(rest) * spatial * 8)
        shape = [out, *shape[1:]] if len(rest) > 1 else [out]
    return REQUEST_BYTES + kept + outputs * 8 + transient
