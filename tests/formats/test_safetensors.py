"""The safetensors encoder, read back with the safetensors library (and torch where installed)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import safetensors
import safetensors.numpy

from initserve.formats import FormatError
from initserve.formats.safetensors import encode_safetensors


def split(data: bytes) -> tuple[bytes, bytes]:
    """(padded header text, byte buffer) of a safetensors file."""
    (size,) = struct.unpack("<Q", data[:8])
    return data[8 : 8 + size], data[8 + size :]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64"])
def test_numpy_reader_gets_values_dtype_and_shape(make_source, collect, values, shape, dtype):
    array = values(shape, dtype)
    data = collect(encode_safetensors([make_source(array, name="layer.weight")], {}))
    loaded = safetensors.numpy.load(data)
    assert list(loaded) == ["layer.weight"]
    assert loaded["layer.weight"].dtype == array.dtype
    assert loaded["layer.weight"].shape == shape
    assert loaded["layer.weight"].tobytes() == array.tobytes()


def test_header_is_space_padded_to_a_multiple_of_8(make_source, collect, values):
    pads = set()
    for name in ["w" * n for n in range(1, 9)]:  # eight name lengths: every padding length occurs
        data = collect(encode_safetensors([make_source(values((3,), "float32"), name=name)], {"k": "v"}))
        header, buffer = split(data)
        assert (8 + len(header)) % 8 == 0
        assert header.startswith(b"{")
        text = header.decode("utf-8")
        stripped = text.rstrip(" ")
        assert stripped.endswith("}")
        pads.add(len(text) - len(stripped))
        assert json.loads(stripped) == {
            "__metadata__": {"k": "v"},
            name: {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
        }
        assert len(buffer) == 12
    assert pads == set(range(8))


def test_many_tensors_are_contiguous_in_the_given_order(make_source, collect, values, to_bfloat16):
    arrays = {
        "z.weight": values((5, 3), "float32", seed=1),
        "a.bias": values((5,), "float64", seed=2),
        "m.empty": values((0, 4), "float16", seed=3),
        "b.scalar": values((), "float16", seed=4),
        "c.weight": values((2, 3), "float32", seed=5),
    }
    sources = [make_source(array, name=name, chunk=2) for name, array in arrays.items()]
    data = collect(encode_safetensors(sources, {"algorithm_version": "1"}))
    header, buffer = split(data)
    entries = json.loads(header)
    assert entries.pop("__metadata__") == {"algorithm_version": "1"}
    assert list(entries) == list(arrays)
    offset = 0
    for name, array in arrays.items():
        begin, end = entries[name]["data_offsets"]
        assert begin == offset
        assert end - begin == array.nbytes
        assert buffer[begin:end] == array.tobytes()
        offset = end
    assert offset == len(buffer)
    loaded = safetensors.numpy.load(data)
    for name, array in arrays.items():
        assert loaded[name].tobytes() == array.tobytes()
        assert loaded[name].shape == array.shape


def test_metadata_through_safe_open(make_source, collect, values, tmp_path):
    metadata = {"spec": '{"method":"normal"}', "algorithm_version": "1"}
    path = tmp_path / "w.safetensors"
    path.write_bytes(collect(encode_safetensors([make_source(values((2, 2), "float32"), name="w")], metadata)))
    with safetensors.safe_open(str(path), framework="numpy") as handle:
        assert handle.metadata() == metadata
        assert list(handle.keys()) == ["w"]
        assert handle.get_tensor("w").shape == (2, 2)


def test_no_metadata_key_when_metadata_is_empty(make_source, collect, values):
    header, _ = split(collect(encode_safetensors([make_source(values((1,), "float32"))], {})))
    assert "__metadata__" not in json.loads(header)


@pytest.mark.parametrize(
    ("names", "bad"),
    [([""], ""), (["w", "w"], "w"), (["__metadata__"], "__metadata__"), (["a", "b", "a"], "a")],
)
def test_bad_names_are_format_errors(make_source, values, names, bad):
    sources = [make_source(values((1,), "float32"), name=name) for name in names]
    with pytest.raises(FormatError) as caught:
        encode_safetensors(sources, {})
    assert caught.value.field == "name"
    assert caught.value.value == bad


def test_torch_reader_including_bfloat16_bitwise(make_source, collect, values):
    torch = pytest.importorskip("torch")
    import safetensors.torch

    bits = values((3, 5), "bfloat16", seed=7)
    floats = values((4,), "float32", seed=8)
    halves = values((2, 2), "float16", seed=9)
    sources = [
        make_source(bits, dtype="bfloat16", name="bf"),
        make_source(floats, name="f"),
        make_source(halves, name="h"),
    ]
    loaded = safetensors.torch.load(collect(encode_safetensors(sources, {})))
    assert loaded["bf"].dtype == torch.bfloat16
    assert loaded["bf"].shape == (3, 5)
    assert np.array_equal(loaded["bf"].view(torch.int16).numpy().view("<u2"), bits)
    # the bfloat16 values are the float32 values whose top half the bits are
    widened = (bits.astype("<u4") << 16).view("<f4")
    assert np.array_equal(loaded["bf"].float().numpy(), widened)
    assert np.array_equal(loaded["f"].numpy(), floats)
    assert np.array_equal(loaded["h"].numpy(), halves)


def test_int64_header_entry_and_torch_batchnorm_counter(make_source, collect, values):
    counter = np.array(12345, dtype="<i8")  # BatchNorm's num_batches_tracked: a 0-D int64 tensor
    counts = values((4,), "int64", seed=10)
    sources = [make_source(counter, name="bn.num_batches_tracked"), make_source(counts, name="counts")]
    data = collect(encode_safetensors(sources, {}))
    header, buffer = split(data)
    assert json.loads(header) == {
        "bn.num_batches_tracked": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]},
        "counts": {"dtype": "I64", "shape": [4], "data_offsets": [8, 40]},
    }
    assert buffer == counter.tobytes() + counts.tobytes()
    torch = pytest.importorskip("torch")
    import safetensors.torch

    loaded = safetensors.torch.load(data)
    assert loaded["bn.num_batches_tracked"].dtype == torch.int64
    assert loaded["bn.num_batches_tracked"].shape == ()
    assert loaded["bn.num_batches_tracked"].item() == 12345
    assert loaded["counts"].tolist() == counts.tolist()
