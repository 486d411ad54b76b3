"""The keyed counter-based random stream behind every tensor.

Key derivation (see docs/determinism.md)::

    digest = SHA-256(b"initserve/v1\\x00" || seed as 8 bytes little-endian || UTF-8(name))
    key    = (k0, k1) = first 16 bytes of digest as two little-endian uint64

Words: the stream of a tensor is a sequence of 64-bit words ``W[s, i]`` for a
substream ``s`` (0 = values, 1 = sparse zero priorities) and an element index
``i`` (row-major, canonical layout). Word ``i`` is lane ``i mod 4`` of the
Philox4x64-10 block (Salmon et al., "Parallel random numbers: as easy as 1, 2,
3", SC'11) computed with ``key`` and the 256-bit counter
``(i // 4) + s * 2**192`` (counter words little-endian: c0 = low 64 bits).

Two implementations compute the same words: the compiled kernel
(``_kernel.c``, used when built) and the reference, the raw output of numpy's
``Philox`` bit generator (numpy promises raw streams are stable across
versions; its ``Philox(counter=c)`` emits block ``c + 1`` first, hence the
``- 1`` below). Tests check they agree.
"""

from __future__ import annotations

import hashlib
import threading
from types import ModuleType

import numpy as np

kernel: ModuleType | None
try:
    from initserve.core import _kernel as kernel
except ImportError:  # not built (e.g. running from a bare source tree): numpy reference only
    kernel = None

__all__ = ["SUBSTREAM_SPARSE", "SUBSTREAM_VALUES", "derive_key", "kernel", "reference_words", "words"]

KEY_DOMAIN = b"initserve/v1\x00"
SUBSTREAM_VALUES = 0
SUBSTREAM_SPARSE = 1
_COUNTER_MOD = 1 << 256
_MASK64 = (1 << 64) - 1


def derive_key(seed: int, name: str) -> tuple[int, int]:
    """Return the Philox key ``(k0, k1)`` for ``(seed, name)``."""
    digest = hashlib.sha256(KEY_DOMAIN + seed.to_bytes(8, "little") + name.encode("utf-8")).digest()
    return int.from_bytes(digest[0:8], "little"), int.from_bytes(digest[8:16], "little")


_local = threading.local()


def _bit_generator(key: tuple[int, int]) -> np.random.Philox:
    """A numpy Philox instance for ``key``, reused per thread (construction costs ~50 µs)."""
    cached = getattr(_local, "philox", None)
    if cached is None or cached[0] != key:
        cached = (key, np.random.Philox(key=np.array(key, dtype=np.uint64)))
        _local.philox = cached
    return cached[1]


def reference_words(key: tuple[int, int], start: int, count: int, substream: int = SUBSTREAM_VALUES) -> np.ndarray:
    """Words ``W[substream, start : start + count]`` from numpy's ``Philox`` (the reference)."""
    block, lane = divmod(start, 4)
    counter = ((substream << 192) + block - 1) % _COUNTER_MOD
    bit_generator = _bit_generator(key)
    bit_generator.state = {
        "bit_generator": "Philox",
        "state": {"counter": np.array([(counter >> (64 * j)) & _MASK64 for j in range(4)], dtype=np.uint64),
                  "key": np.array(key, dtype=np.uint64)},
        "buffer": np.zeros(4, dtype=np.uint64),
        "buffer_pos": 4,
        "has_uint32": 0,
        "uinteger": 0,
    }
    raw = bit_generator.random_raw(count + lane)
    return raw[lane:] if lane else raw


def words(key: tuple[int, int], start: int, count: int, substream: int = SUBSTREAM_VALUES) -> np.ndarray:
    """Words ``W[substream, start : start + count]``: the compiled kernel, else the reference."""
    if kernel is None:
        return reference_words(key, start, count, substream)
    out = np.empty(count, dtype=np.uint64)
    kernel.words(out, key[0], key[1], start, substream)
    return out
