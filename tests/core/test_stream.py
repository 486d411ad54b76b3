"""Key derivation and the Philox word stream (reference and compiled kernel)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from initserve.core import stream

# Random123's known-answer test for Philox4x64-10: counter 0, key 0.
KAT_ZERO = [0x16554D9ECA36314C, 0xDB20FE9D672D0FDC, 0xD7E772CEE186176B, 0x7E68B68AEC7BA23B]


def test_key_is_sha256_of_domain_seed_and_name() -> None:
    digest = hashlib.sha256(b"initserve/v1\x00" + (12345).to_bytes(8, "little") + b"layer.weight").digest()
    assert stream.derive_key(12345, "layer.weight") == (
        int.from_bytes(digest[:8], "little"),
        int.from_bytes(digest[8:16], "little"),
    )


def test_seed_and_name_change_the_key() -> None:
    keys = {stream.derive_key(s, n) for s in (0, 1, 2**64 - 1) for n in ("", "a", "b", "é")}
    assert len(keys) == 12


def test_reference_words_match_random123_known_answer() -> None:
    assert stream.reference_words((0, 0), 0, 4).tolist() == KAT_ZERO


@pytest.mark.parametrize("substream", [0, 1])
@pytest.mark.parametrize("start", [0, 1, 3, 4, 1001, 2**40 + 3])
def test_any_range_equals_the_same_part_of_a_longer_range(start: int, substream: int) -> None:
    key = (0x0123456789ABCDEF, 0xFEDCBA9876543210)
    long = stream.reference_words(key, start - start % 4, 64, substream)
    assert np.array_equal(stream.reference_words(key, start, 17, substream), long[start % 4 : start % 4 + 17])


def test_substreams_differ() -> None:
    key = stream.derive_key(0, "w")
    assert not np.array_equal(stream.reference_words(key, 0, 8, 0), stream.reference_words(key, 0, 8, 1))


@pytest.mark.skipif(stream.kernel is None, reason="compiled kernel not built")
@pytest.mark.parametrize("key", [(0, 0), (2**64 - 1, 2**64 - 1), (0x9E3779B97F4A7C15, 7)])
@pytest.mark.parametrize("start,count", [(0, 1), (1, 3), (7, 511), (2**62 + 1, 513), (5, 100_003)])
def test_kernel_words_equal_reference(key: tuple[int, int], start: int, count: int) -> None:
    for substream in (0, 1):
        assert np.array_equal(stream.words(key, start, count, substream),
                              stream.reference_words(key, start, count, substream))
