"""Make the C allocator give freed buffers back to the system, so that RSS follows the memory budget.

The memory budget (:mod:`.admission`) bounds what requests *use*; RSS also counts what glibc's malloc keeps
after ``free``. By default glibc raises its mmap threshold each time a large mmapped block is freed (up to
32 MiB), so after a few answers numpy's chunk buffers (4–28 MiB) come from the heap arenas, one per busy
thread, where freed memory stays mapped and fragments. Measured with the load benchmark (30 s, 32 clients,
2 workers, 256 MiB budget each): RSS peaked 509 MiB over idle and stayed 383 MiB above idle after the load;
with a fixed threshold of 128 KiB and at most 2 arenas, the peak was 221 MiB over idle and RSS went back to
idle after it. A fixed threshold (``mallopt(M_MMAP_THRESHOLD)``, which also stops the dynamic adjustment
of the trim threshold) maps every block of 128 KiB or more on its own and unmaps it when freed; the price
is fresh zeroed pages per chunk, a few percent of generation time.

Only on glibc (Linux): elsewhere, and where ``mallopt`` is missing, this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024
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
