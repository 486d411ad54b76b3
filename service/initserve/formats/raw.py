"""Raw encoder: the bare little-endian data buffer in row-major order.

Shape and dtype travel in headers: ``X-Initserve-Shape`` is the comma-separated
dimensions (``"256,128"``; the empty string for a 0-D tensor) and
``X-Initserve-Dtype`` the dtype name. bfloat16 is the upper 16 bits of the
float32 bit pattern, two bytes per element, little-endian.
"""

from __future__ import annotations

from initserve.formats.body import EncodedBody, TensorPart, assemble
from initserve.formats.source import TensorSource, storage_dtype

MEDIA_TYPE = "application/octet-stream"
SHAPE_HEADER = "X-Initserve-Shape"
DTYPE_HEADER = "X-Initserve-Dtype"


def encode_raw(source: TensorSource) -> EncodedBody:
    """Encode ``source`` as its raw little-endian buffer, shape and dtype in headers."""
    storage_dtype(source.dtype)  # reject unknown dtypes before any header is built
    headers = {
        SHAPE_HEADER: ",".join(str(int(dim)) for dim in source.shape),
        DTYPE_HEADER: source.dtype,
    }
    return assemble([TensorPart(source)], MEDIA_TYPE, headers)
