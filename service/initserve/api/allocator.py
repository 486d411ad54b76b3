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

Only on glibc (Linux): elsewhere, and where ``mallopt`` is missing, this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 8 * 1024 * 1024
"""Blocks from this size up are mapped on their own and returned to the system when freed."""
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
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_ARENA_MAX, ARENA_MAX))
