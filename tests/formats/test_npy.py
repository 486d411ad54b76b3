"""The .npy encoder, read back with numpy's own reader."""

from __future__ import annotations

import io

import numpy as np
import pytest

from initserve.formats import FormatError
from initserve.formats.npy import encode_npy, npy_header


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64"])
@pytest.mark.parametrize("chunk", [1, 5, 10_000])
def test_np_load_reads_back_values_dtype_and_shape(make_source, collect, values, shape, dtype, chunk):
    array = values(shape, dtype)
    data = collect(encode_npy(make_source(array, chunk=chunk)))
    loaded = np.load(io.BytesIO(data), allow_pickle=False)
    assert loaded.dtype == array.dtype
    assert loaded.shape == shape
    assert loaded.tobytes() == array.tobytes()


def test_header_is_spec_conformant(make_source, collect, values, shape):
    data = collect(encode_npy(make_source(values(shape, "float32"))))
    stream = io.BytesIO(data)
    assert np.lib.format.read_magic(stream) == (1, 0)
    header = np.lib.format.read_array_header_1_0(stream)
    assert header == (shape, False, np.dtype("<f4"))
    data_start = stream.tell()
    assert data_start % 64 == 0
    header_len = int.from_bytes(data[8:10], "little")
    assert data_start == 10 + header_len
    text = data[10:data_start].decode("latin1")
    assert text.startswith("{'descr': '<f4', 'fortran_order': False, 'shape': ")
    assert text.endswith("\n")
    assert text.rstrip("\n").rstrip(" ").endswith("}")


def test_header_switches_to_version_2_when_too_long():
    shape = (1,) * 30_000  # repr far longer than 65535 bytes
    header = npy_header(shape, "<f8")
    assert header[6:8] == b"\x02\x00"
    assert len(header) % 64 == 0
    stream = io.BytesIO(header)
    assert np.lib.format.read_magic(stream) == (2, 0)
    assert np.lib.format.read_array_header_2_0(stream, max_header_size=1 << 30)[0] == shape


def test_bfloat16_is_refused_with_a_format_error(make_source, values):
    source = make_source(values((2, 2), "bfloat16"), dtype="bfloat16")
    with pytest.raises(FormatError) as caught:
        encode_npy(source)
    assert caught.value.field == "format"
    assert caught.value.value == "npy"
    assert caught.value.message == "format 'npy' cannot carry dtype 'bfloat16'; use format=safetensors or format=raw"
    assert source.calls == []


def test_media_type_and_laziness(make_source, values):
    source = make_source(values((4, 4), "float32"))
    body = encode_npy(source)
    assert body.media_type == "application/octet-stream"
    assert source.calls == []  # nothing generated before the body is consumed
    next(body.chunks)
    assert source.calls == []  # the header comes first
    next(body.chunks)
    assert source.calls == [(0, 16)]
