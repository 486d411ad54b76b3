"""The raw encoder: the little-endian buffer, shape and dtype in headers."""

from __future__ import annotations

import numpy as np
import pytest

from initserve.formats import FormatError
from initserve.formats.raw import encode_raw


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "int64"])
def test_buffer_is_little_endian_row_major(make_source, collect, values, shape, dtype):
    array = values(shape, dtype)
    body = encode_raw(make_source(array, dtype=dtype))
    data = collect(body)
    assert data == array.tobytes()
    restored = np.frombuffer(data, dtype=array.dtype).reshape(shape)
    assert np.array_equal(restored, array)
    assert body.headers["X-Initserve-Dtype"] == dtype
    assert body.media_type == "application/octet-stream"


@pytest.mark.parametrize(("shape", "text"), [((256, 128), "256,128"), ((7,), "7"), ((), ""), ((0, 3), "0,3")])
def test_shape_header(make_source, values, shape, text):
    assert encode_raw(make_source(values(shape, "float32"))).headers["X-Initserve-Shape"] == text


def test_unknown_dtype_is_a_format_error(make_source, values):
    source = make_source(values((2,), "float32"))
    source.dtype = "int8"
    with pytest.raises(FormatError) as caught:
        encode_raw(source)
    assert caught.value.field == "dtype"
