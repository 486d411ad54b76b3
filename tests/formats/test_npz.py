"""The .npz encoder, read back with numpy's and Python's ZIP readers and checked field by field."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import pytest

from initserve.formats import FormatError
from initserve.formats.npy import encode_npy
from initserve.formats.npz import encode_npz

MODELS = {
    "one": [("w", (3, 4), "float32")],
    "mixed": [
        ("enc.0.weight", (5, 3), "float32"),
        ("enc/0/bias", (5,), "float64"),
        ("bn.num_batches_tracked", (), "int64"),
        ("bn.running_mean", (0, 4), "float32"),
        ("half", (2, 3, 2), "float16"),
        ("counts", (6,), "int64"),
        ("größe", (2,), "float64"),
    ],
    "none": [],
}
END_OF_CENTRAL_DIRECTORY = struct.Struct("<IHHHHIIH")
CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
DESCRIPTOR = struct.Struct("<IIII")


def model(make_source, values, key, chunk=7):
    """(sources, {name: array}) for the model ``MODELS[key]``."""
    arrays = {name: values(shape, dtype, seed=seed) for seed, (name, shape, dtype) in enumerate(MODELS[key])}
    sources = [make_source(arrays[name], dtype=dtype, name=name, chunk=chunk) for name, _, dtype in MODELS[key]]
    return sources, arrays


def central_directory(data):
    """(end of central directory fields, [(offset, central header fields, name)]) parsed from an archive."""
    end = END_OF_CENTRAL_DIRECTORY.unpack(data[-END_OF_CENTRAL_DIRECTORY.size :])
    offset, entries = end[6], []
    for _ in range(end[4]):
        fields = CENTRAL_HEADER.unpack_from(data, offset)
        name_start = offset + CENTRAL_HEADER.size
        entries.append((offset, fields, data[name_start : name_start + fields[10]]))
        offset = name_start + fields[10]
    assert offset == len(data) - END_OF_CENTRAL_DIRECTORY.size
    return end, entries


def joined(body, start, stop):
    return b"".join(body.byte_range(start, stop))


@pytest.mark.parametrize("key", list(MODELS))
@pytest.mark.parametrize("chunk", [1, 5, 10_000])
def test_np_load_reads_back_every_tensor(make_source, collect, values, key, chunk):
    sources, arrays = model(make_source, values, key, chunk)
    with np.load(io.BytesIO(collect(encode_npz(sources))), allow_pickle=False) as loaded:
        assert loaded.files == list(arrays)
        for name, array in arrays.items():
            assert loaded[name].dtype == array.dtype
            assert loaded[name].shape == array.shape
            assert loaded[name].tobytes() == array.tobytes()


@pytest.mark.parametrize("key", list(MODELS))
def test_zipfile_finds_stored_npy_members_with_correct_crcs(make_source, collect, values, key):
    sources, _ = model(make_source, values, key)
    with zipfile.ZipFile(io.BytesIO(collect(encode_npz(sources)))) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        assert [info.filename for info in infos] == [source.name + ".npy" for source in sources]
        for info, source in zip(infos, sources, strict=True):
            npy = collect(encode_npy(source))
            assert archive.read(info) == npy  # each member is exactly the .npy file
            assert info.CRC == zlib.crc32(npy)
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.file_size == info.compress_size == len(npy)
            assert info.date_time == (1980, 1, 1, 0, 0, 0)


def test_headers_descriptors_and_directory_are_spec_conformant(make_source, collect, values):
    sources, _ = model(make_source, values, "mixed")
    data = collect(encode_npz(sources))
    end, entries = central_directory(data)
    assert end == (0x06054B50, 0, 0, len(sources), len(sources), len(data) - 22 - end[6], end[6], 0)
    offset = 0
    for (_, fields, name), source in zip(entries, sources, strict=True):
        npy = collect(encode_npy(source))
        crc = zlib.crc32(npy)
        assert name == (source.name + ".npy").encode("utf-8")
        assert fields[:7] == (0x02014B50, 20, 20, 0x0808, 0, 0, 0x21)  # versions 2.0, flags, stored, 1980-01-01 00:00
        assert fields[7:] == (crc, len(npy), len(npy), len(name), 0, 0, 0, 0, 0, offset)
        local = LOCAL_HEADER.unpack_from(data, offset)
        assert local == (0x04034B50, 20, 0x0808, 0, 0, 0x21, 0, 0, 0, len(name), 0)
        data_start = offset + LOCAL_HEADER.size + len(name)
        assert data[offset + LOCAL_HEADER.size : data_start] == name
        assert data[data_start : data_start + len(npy)] == npy
        assert DESCRIPTOR.unpack_from(data, data_start + len(npy)) == (0x08074B50, crc, len(npy), len(npy))
        offset = data_start + len(npy) + DESCRIPTOR.size
    assert offset == end[6]


def test_body_is_deterministic_and_matches_every_byte_range(make_source, collect, values):
    sources, _ = model(make_source, values, "mixed", chunk=3)
    whole = collect(encode_npz(sources))
    assert collect(encode_npz(sources)) == whole
    end, entries = central_directory(whole)
    length, directory = len(whole), end[6]
    edges = [(0, 0), (0, 1), (0, length), (length - 1, length), (length - 22, length), (directory, length)]
    edges += [(directory, length - 22), (directory + 10, directory + 30), (length // 2, length), (5, length - 5)]
    for entry, fields, name in entries:  # each CRC of the directory, each data descriptor, each member's data
        edges += [(entry + 16, entry + 20), (entry + 17, entry + 19), (entry, entry + 46)]
        data_start = fields[16] + 30 + len(name)
        descriptor = data_start + fields[9]
        edges += [(descriptor, descriptor + 16), (descriptor + 5, descriptor + 6), (data_start, descriptor)]
    rng = np.random.default_rng(0)
    ranges = edges + [tuple(sorted(int(x) for x in rng.integers(0, length + 1, 2))) for _ in range(200)]
    shared = encode_npz(sources)
    for start, stop in ranges:
        assert joined(encode_npz(sources), start, stop) == whole[start:stop]  # CRCs by a pass over the member
        assert joined(shared, start, stop) == whole[start:stop]  # CRCs memoized across ranges


def test_crcs_are_learnt_while_streaming_and_computed_only_when_needed(make_source, collect, values):
    sources = [make_source(values((10,), "float32", seed=i), name=f"t{i}", chunk=4) for i in range(3)]
    body = encode_npz(sources)
    assert [source.calls for source in sources] == [[], [], []]  # nothing generated before the body is read
    collect(body)
    assert [source.calls for source in sources] == [[(0, 10)]] * 3  # one pass each: no second pass for the CRC
    expected_crc = struct.pack("<I", zlib.crc32(collect(encode_npy(sources[1]))))
    fresh = encode_npz(sources)
    for source in sources:
        source.calls.clear()
    joined(fresh, fresh.length - 22, fresh.length)  # the end record holds no CRC
    assert [source.calls for source in sources] == [[], [], []]
    directory = fresh.length - 22 - 3 * (46 + len(b"t0.npy"))
    second_crc = directory + 46 + len(b"t0.npy") + 16
    assert joined(fresh, second_crc, second_crc + 4) == expected_crc
    assert joined(fresh, second_crc + 2, second_crc + 3) == expected_crc[2:3]
    assert [source.calls for source in sources] == [[], [(0, 10)], []]  # one pass, memoized for the body


@pytest.mark.parametrize(("names", "bad"), [([""], ""), (["w", "w"], "w"), (["a", "b", "a"], "a")])
def test_empty_or_duplicate_names_are_format_errors(make_source, values, names, bad):
    sources = [make_source(values((1,), "float32"), name=name) for name in names]
    with pytest.raises(FormatError) as caught:
        encode_npz(sources)
    assert caught.value.field == "name"
    assert caught.value.value == bad


def test_overlong_name_is_a_format_error(make_source, collect, values):
    longest = "n" * (0xFFFF - len(".npy"))
    with np.load(io.BytesIO(collect(encode_npz([make_source(values((1,), "float32"), name=longest)])))) as loaded:
        assert loaded.files == [longest]
    with pytest.raises(FormatError) as caught:
        encode_npz([make_source(values((1,), "float32"), name=longest + "n")])
    assert caught.value.field == "name"


def assert_refused(sources, needle):
    with pytest.raises(FormatError) as caught:
        encode_npz(sources)
    assert caught.value.field == "format"
    assert caught.value.value == "npz"
    assert caught.value.message.startswith("format 'npz' ")
    assert needle in caught.value.message
    assert caught.value.message.endswith("; use format=safetensors")
    assert all(source.calls == [] for source in sources)


def test_bfloat16_is_refused(make_source, values):
    sources = [make_source(values((2,), "float32"), name="a"), make_source(values((2, 2), "bfloat16"), "bfloat16")]
    assert_refused(sources, "bfloat16")


@pytest.fixture
def lazy(make_source):
    """Factory: ``lazy(name, shape)``, a float16 source that is sized but must never be read."""

    def make(name, shape):
        source = make_source(np.zeros(0, dtype="<f2"), name=name)
        source.shape = shape
        return source

    return make


def test_archive_of_4_gib_or_more_is_refused(lazy):
    probe = 2**31 - 1000  # float16 elements: the archive grows by 2 bytes per element
    elements = probe + (2**32 - 2 - encode_npz([lazy("big", (probe,))]).length) // 2
    largest = encode_npz([lazy("big", (elements,))])
    assert largest.length == 2**32 - 2  # every archive length is even: this is the largest one
    assert_refused([lazy("big", (elements + 1,))], "4 GiB")
    assert_refused([lazy("a", (2**30,)), lazy("b", (2**30,))], "4 GiB")


def test_more_than_65535_members_is_refused(lazy):
    sources = [lazy(f"t{i}", (0,)) for i in range(65_535)]
    body = encode_npz(sources)
    end = END_OF_CENTRAL_DIRECTORY.unpack(joined(body, body.length - 22, body.length))
    assert end[3:5] == (65_535, 65_535)
    assert_refused([*sources, lazy("one_more", (0,))], "65535")
