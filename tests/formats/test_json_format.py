"""The JSON encoders: values round-trip bit-exactly through a float64 JSON parser, int64 as exact integers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from initserve.formats import FormatError
from initserve.formats.json_format import encode_json, encode_json_many


def parse(make_source, collect, array, dtype, **extra):
    source = make_source(array, dtype=dtype, chunk=1000)
    body = encode_json(source, extra)
    assert body.media_type == "application/json"
    return json.loads(collect(body))  # stdlib json: every number becomes a float64


def all_finite_16_bit_patterns(exponent_mask: int) -> np.ndarray:
    bits = np.arange(1 << 16, dtype="<u4").astype("<u2")
    return bits[(bits & exponent_mask) != exponent_mask]  # drop inf/NaN (all-ones exponent)


def test_float16_every_finite_value_round_trips(make_source, collect):
    array = all_finite_16_bit_patterns(0x7C00).view("<f2")
    doc = parse(make_source, collect, array, "float16")
    restored = np.array(doc["data"], dtype=np.float64).astype("<f2")
    assert restored.view("<u2").tobytes() == array.view("<u2").tobytes()  # bitwise: -0.0 too


def test_bfloat16_every_finite_value_round_trips(make_source, collect):
    bits = all_finite_16_bit_patterns(0x7F80)
    doc = parse(make_source, collect, bits, "bfloat16")
    as_float32 = np.array(doc["data"], dtype=np.float64).astype("<f4").view("<u4")
    assert not (as_float32 & 0xFFFF).any()  # the decimals are exact bfloat16 values
    assert np.array_equal((as_float32 >> 16).astype("<u2"), bits)


def test_bfloat16_round_trips_through_torch_cast(make_source, collect):
    torch = pytest.importorskip("torch")
    bits = all_finite_16_bit_patterns(0x7F80)
    doc = parse(make_source, collect, bits, "bfloat16")
    cast = torch.tensor(doc["data"], dtype=torch.float64).to(torch.bfloat16)
    assert np.array_equal(cast.view(torch.int16).numpy().view("<u2"), bits)


FLOAT32_EDGES = [0.1, 1 / 3, 3.4028235e38, 1.1754944e-38, 1e-45, -0.0, 16777217.0, -2.5]
FLOAT64_EDGES = [0.1, 1 / 3, 1.7976931348623157e308, 2.2250738585072014e-308, 5e-324, -0.0, 2.0**53 + 2]


@pytest.mark.parametrize(("dtype", "edges"), [("float32", FLOAT32_EDGES), ("float64", FLOAT64_EDGES)])
def test_float32_and_float64_round_trip_bitwise(make_source, collect, values, dtype, edges):
    array = np.concatenate([np.array(edges, dtype=values((), dtype).dtype), values((5000,), dtype)])
    doc = parse(make_source, collect, array, dtype)
    restored = np.array(doc["data"], dtype=np.float64).astype(array.dtype)
    assert restored.tobytes() == array.tobytes()


def test_float32_is_written_as_its_shortest_decimal(make_source, collect):
    array = np.array([0.1, 1 / 3, 3.0], dtype="<f4")
    text = b"".join(encode_json(make_source(array)).chunks)
    assert text.endswith(b'"data":[0.1,0.33333334,3.0]}')


def test_document_shape_and_key_order(make_source, collect, values, shape):
    array = values(shape, "float32")
    source = make_source(array, name="enc.0.weight", chunk=4)
    raw = collect(encode_json(source, {"algorithm_version": "1", "seed": 3}))
    doc = json.loads(raw)
    assert list(doc) == ["name", "shape", "dtype", "algorithm_version", "seed", "data"]
    assert doc["name"] == "enc.0.weight"
    assert doc["shape"] == list(shape)
    assert doc["dtype"] == "float32"
    assert len(doc["data"]) == array.size  # a 0-D tensor has one value, a zero-size tensor none
    assert np.array(doc["data"], dtype=np.float64).astype("<f4").tobytes() == array.tobytes()


def test_extra_keys_must_not_clash(make_source, values):
    with pytest.raises(ValueError, match="data"):
        encode_json(make_source(values((2,), "float32")), {"data": []})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_format_errors(make_source, bad):
    array = np.array([1.0, bad, 2.0], dtype="<f4")
    with pytest.raises(FormatError) as caught:
        encode_json(make_source(array))
    assert caught.value.field == "format"
    assert caught.value.value == "json"


INT64_EDGES = [0, 1, -1, 2**53 + 1, 2**63 - 1, -(2**63)]


def test_int64_is_written_as_exact_integers(make_source, collect, values):
    array = np.concatenate([np.array(INT64_EDGES, dtype="<i8"), values((50,), "int64")])
    raw = collect(encode_json(make_source(array, chunk=16)))
    assert b'"dtype":"int64","data":[0,1,-1,9007199254740993,9223372036854775807,-9223372036854775808,' in raw
    data = json.loads(raw)["data"]
    assert all(type(value) is int for value in data)
    assert data == array.tolist()


def test_int64_zero_dimensional(make_source, collect):
    raw = collect(encode_json(make_source(np.array(0, dtype="<i8"), name="bn.num_batches_tracked")))
    assert raw == b'{"name":"bn.num_batches_tracked","shape":[],"dtype":"int64","data":[0]}'


def restore(tensor):
    """The storage-dtype array a parsed JSON tensor object holds."""
    if tensor["dtype"] == "int64":
        return np.array(tensor["data"], dtype="<i8").reshape(tensor["shape"])
    if tensor["dtype"] == "bfloat16":
        widened = np.array(tensor["data"], dtype=np.float64).astype("<f4")
        return (widened.view("<u4") >> 16).astype("<u2").reshape(tensor["shape"])
    storage = {"float32": "<f4", "float64": "<f8", "float16": "<f2"}[tensor["dtype"]]
    return np.array(tensor["data"], dtype=np.float64).astype(storage).reshape(tensor["shape"])


MANY = [
    ("enc.0.weight", (5, 3), "float32"),
    ("enc/0/bias", (5,), "float64"),
    ("bn.num_batches_tracked", (), "int64"),
    ("empty", (0, 4), "float16"),
    ("half", (2, 3), "float16"),
    ("brain", (3, 2), "bfloat16"),
    ("counts", (4,), "int64"),
]


def test_many_tensors_in_order_with_extra_keys_first(make_source, collect, values):
    arrays = {name: values(shape, dtype, seed=seed) for seed, (name, shape, dtype) in enumerate(MANY)}
    sources = [make_source(arrays[name], dtype=dtype, name=name, chunk=2) for name, _, dtype in MANY]
    body = encode_json_many(sources, {"algorithm_version": "1", "seed": 3})
    assert body.media_type == "application/json"
    doc = json.loads(collect(body))
    assert list(doc) == ["algorithm_version", "seed", "tensors"]
    assert doc["algorithm_version"] == "1"
    assert doc["seed"] == 3
    assert [tensor["name"] for tensor in doc["tensors"]] == [name for name, _, _ in MANY]
    for tensor, (name, shape, dtype) in zip(doc["tensors"], MANY, strict=True):
        assert list(tensor) == ["name", "shape", "dtype", "data"]
        assert tensor["shape"] == list(shape)
        assert tensor["dtype"] == dtype
        restored = restore(tensor)
        assert restored.dtype == arrays[name].dtype
        assert restored.tobytes() == arrays[name].tobytes()


def test_each_tensor_object_is_the_single_tensor_document(make_source, collect, values):
    sources = [make_source(values(shape, dtype, seed=1), dtype=dtype, name=name) for name, shape, dtype in MANY]
    doc = json.loads(collect(encode_json_many(sources)))
    assert doc["tensors"] == [json.loads(collect(encode_json(source))) for source in sources]


@pytest.mark.parametrize(("extra", "expected"), [(None, b'{"tensors":[]}'), ({"k": "v"}, b'{"k":"v","tensors":[]}')])
def test_no_tensors(collect, extra, expected):
    assert collect(encode_json_many([], extra)) == expected


def test_extra_key_tensors_is_refused(make_source, values):
    with pytest.raises(ValueError, match="tensors"):
        encode_json_many([make_source(values((2,), "float32"))], {"tensors": []})


def test_non_finite_values_in_any_tensor_are_format_errors(make_source, values):
    sources = [make_source(values((3,), "float32"), name="a"), make_source(np.array([np.nan], dtype="<f4"), name="b")]
    with pytest.raises(FormatError) as caught:
        encode_json_many(sources)
    assert caught.value.field == "format"
    assert caught.value.value == "json"
