"""Encoded bodies: exact length, bounded chunks, byte ranges, guards against faulty sources."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from initserve.formats import body as body_module
from initserve.formats.body import DeferredBytes, TensorPart, assemble
from initserve.formats.npy import encode_npy
from initserve.formats.raw import encode_raw
from initserve.formats.safetensors import encode_safetensors


def test_chunks_never_exceed_the_cap(make_source, collect, values, monkeypatch):
    monkeypatch.setattr(body_module, "MAX_CHUNK_BYTES", 64)
    array = values((50, 3), "float64")
    source = make_source(array, chunk=1000)  # one source chunk of 1200 bytes
    body = assemble([b"h" * 200, TensorPart(source)], "application/octet-stream")
    chunks = list(body.chunks)
    assert max(len(chunk) for chunk in chunks) <= 64
    assert len(chunks) >= (200 + 1200) // 64
    assert b"".join(chunks) == b"h" * 200 + array.tobytes()


def test_byte_ranges_match_slices_of_the_whole(make_source, collect, values):
    arrays = [values((7, 3), "float32", seed=1), values((5,), "float64", seed=2), values((3,), "float16", seed=3)]
    sources = [make_source(array, name=f"t{i}", chunk=4) for i, array in enumerate(arrays)]
    body = encode_safetensors(sources, {"k": "v"})
    whole = b"".join(body.byte_range(0, body.length))
    assert whole == collect(encode_safetensors(sources, {"k": "v"}))
    rng = np.random.default_rng(0)
    for start, stop in [(0, 0), (0, 1), (body.length - 1, body.length), (3, body.length)] + [
        tuple(sorted(rng.integers(0, body.length + 1, 2))) for _ in range(200)
    ]:
        assert b"".join(body.byte_range(int(start), int(stop))) == whole[start:stop]


def test_byte_range_generates_only_overlapping_elements(make_source, values):
    source = make_source(values((1000,), "float32"), chunk=10)
    body = encode_npy(source)
    data_start = body.length - 4000
    source.calls.clear()
    piece = b"".join(body.byte_range(data_start + 402, data_start + 409))  # bytes of elements 100..102
    assert piece == source.values.tobytes()[402:409]
    assert source.calls == [(100, 103)]


def test_deferred_bytes_are_computed_only_when_a_range_reaches_them():
    computed = []

    def compute():
        computed.append(len(computed))
        return b"XYZ"

    body = assemble([b"abc", DeferredBytes(3, compute), b"de"], "application/octet-stream")
    assert body.length == 8
    assert b"".join(body.byte_range(0, 3)) == b"abc"
    assert b"".join(body.byte_range(6, 8)) == b"de"
    assert computed == []
    assert b"".join(body.byte_range(2, 5)) == b"cXY"
    assert computed == [0]
    assert b"".join(body.chunks) == b"abcXYZde"
    assert computed == [0, 1]


def test_deferred_bytes_of_the_wrong_length_are_a_bug():
    body = assemble([DeferredBytes(4, lambda: b"abc")], "application/octet-stream")
    with pytest.raises(ValueError, match="computed 3 bytes, expected 4"):
        b"".join(body.chunks)


@pytest.mark.parametrize(("start", "stop"), [(-1, 3), (5, 4), (0, 10_000)])
def test_byte_range_outside_the_body_is_refused(make_source, values, start, stop):
    body = encode_npy(make_source(values((4,), "float32")))
    with pytest.raises(ValueError, match="outside"):
        body.byte_range(start, stop)


def test_source_with_wrong_dtype_is_a_bug_not_a_silent_corruption(make_source, values):
    source = make_source(values((4,), "float32"))
    source.values = source.values.astype("<f8")
    with pytest.raises(TypeError, match="expected 1-D <f4"):
        b"".join(encode_npy(source).chunks)


@pytest.mark.parametrize("delta", [-1, 1])
def test_source_with_wrong_element_count_is_detected(make_source, values, delta):
    source = make_source(values((6,), "float32"))
    original = source.iter_flat

    def faulty(start, stop):
        return original(start, stop + delta)

    source.values = np.concatenate([source.values, source.values])
    source.iter_flat = faulty
    with pytest.raises(ValueError, match="elements"):
        b"".join(encode_npy(source).chunks)


@dataclass
class ViewSource:
    """A float32 source whose chunks are views into its one array (like a cached whole matrix)."""

    values: np.ndarray
    chunk: int
    name: str = "w"
    dtype: str = "float32"
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def iter_flat(self, start: int, stop: int) -> Iterator[np.ndarray]:
        for begin in range(start, stop, self.chunk):
            yield self.values[begin : min(begin + self.chunk, stop)]


def test_a_piece_views_a_buffer_made_for_it_and_copies_a_shared_one(make_source, values):
    array = values((40,), "float32")
    owned = list(encode_raw(make_source(array, chunk=16)).chunks)  # each chunk a fresh array: no copy
    assert [type(piece) for piece in owned] == [memoryview] * 3
    assert all(piece.readonly and piece.format == "B" for piece in owned)
    assert [len(piece) for piece in owned] == [64, 64, 32]
    assert b"".join(owned) == array.tobytes()

    shared = ViewSource(array.copy(), chunk=16)
    matrix = weakref.ref(shared.values)
    pieces = list(encode_raw(shared).chunks)
    assert [type(piece) for piece in pieces] == [bytes] * 3  # a view would keep the whole array alive
    del shared
    assert matrix() is None
    assert b"".join(pieces) == array.tobytes()
