"""Make the C allocator give freed buffers back to the system, so that RSS follows the memory budget.

The memory budget (:mod:`.admission`) bounds what requests *use*; RSS also counts what glibc's malloc keeps
after ``free``. By default glibc raises its mmap threshold each time a large mmapped block is freed (up to
32 MiB), so after a few answers numpy's large buffers come from the heap arenas (8 per core), where freed
memory stays mapped and fragments. Measured with the load benchmark (30 s, 32 clients, 2 workers, 256 MiB
budget each, a loaded machine): RSS peaked 509 MiB over idle and stayed 383 MiB above idle after the load;
with a fixed threshold of 128 KiB and at most 2 arenas, 221 MiB over idle and back to idle after it.

The threshold is 8 MiB, not 128 KiB: a fixed threshold (``mallopt(M_MMAP_THRESHOLD)``, which also stops
the dynamic adjustment of the trim threshold) maps every block from its size up on its own and unmaps it
when freed, so each such buffer is fresh zeroed pages, and a 1 GiB download spent ~15% of the server's CPU
clearing pages with 128 KiB (0.70× the in-process generation throughput, against 0.83–0.87× with 8 MiB).
Below 8 MiB are the streamed chunks (4 MiB of float32 and their bytes), reused from the two arenas; above
it the builds of whole matrices, statistics samples and JSON texts, returned at once. The figures of the
current setting are in the load section of docs/benchmarks.md.

The fixed mmap threshold also freezes the *trim* threshold at its default of 128 KiB: whenever more than that
was free at the top of a heap, glibc gave it back, so with a chunk in flight while the next one is made, a
quarter of the chunks landed on fresh pages (62,000 minor faults per GiB served, ~0.2 server CPU s of
clearing pages). The trim threshold is 16 MiB, twice the mmap threshold as glibc's own dynamic adjustment
sets it: a heap keeps at most that much free memory at its top, and a 1 GiB download faults almost no pages
(measured, six alternating 1 GiB downloads from two servers: median 539 against 500 MiB/s, server CPU 3.16
against 3.39 s).

Only on glibc (Linux): elsewhere, and where ``mallopt`` is missing, this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1
M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 8 * 1024 * 1024
"""Blocks from this size up are mapped on their own and returned to the system when freed."""
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
"""Free memory at the top of a heap is given back only from this size up (glibc's own dynamic setting is 2 × the
mmap threshold; a fixed mmap threshold leaves it at 128 KiB)."""
ARENA_MAX = 2
"""malloc arenas (glibc's default is 8 per core): fewer heaps to keep freed memory in."""


def return_freed_memory() -> bool:
    """Set glibc's malloc to unmap large freed blocks at once; whether it could (False off glibc)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_ARENA_MAX, ARENA_MAX))
    return all(mallopt(option, value) for option, value in settings)
