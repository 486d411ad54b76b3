"""The allocator gives freed chunk buffers back: RSS after a burst of large buffers returns to where it was."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from initserve.api.allocator import return_freed_memory

# Chunk-sized buffers allocated and freed by a few threads at once, as concurrent answers do. Freeing a large
# mapped block first raises glibc's dynamic mmap threshold, so without the fixed one the later buffers come
# from the arenas and stay mapped after they are freed.
BURST = textwrap.dedent("""
    import sys
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np
    if sys.argv[1] == "fixed":
        from initserve.api.allocator import return_freed_memory
        assert return_freed_memory()

    def rss():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) * 1024

    np.ones(32 << 20, dtype=np.uint8)  # allocated and freed at once
    before = rss()

    def burst(seed):
        kept = [np.full((3 << 20) + 4096 * (seed + k), 1.0 / (seed + 1)) for k in range(8)]  # 8 × ~24 MiB
        return sum(float(a[-1]) for a in kept[::2])

    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            list(pool.map(burst, range(4)))
    print((rss() - before) >> 20)
""")


# 256 chunks of 4 MiB (1 GiB of float32) made on a worker thread while the previous one is still held, as a
# streamed answer makes them; prints the minor page faults (fresh pages) this cost.
STREAM = textwrap.dedent("""
    import resource
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np
    from initserve.api.allocator import return_freed_memory
    assert return_freed_memory()

    def chunks():
        for i in range(256):
            chunk = np.empty(1 << 20, np.float32)
            chunk.fill(i)
            yield chunk

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with ThreadPoolExecutor(1) as pool:
        made, held = chunks(), None
        for _ in range(256):
            held = pool.submit(next, made).result()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def run(program: str, *args: str) -> int:
    done = subprocess.run([sys.executable, "-c", program, *args], check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tunables are glibc's")
def test_freed_buffers_are_returned_to_the_system() -> None:
    assert return_freed_memory()
    assert run(BURST, "fixed") < 16


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tunables are glibc's")
def test_without_it_glibc_keeps_them() -> None:
    """The control: the default allocator keeps (part of) the freed buffers, which is what the fix is for."""
    assert run(BURST, "default") > 64


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tunables are glibc's")
def test_streamed_chunks_reuse_their_pages() -> None:
    """Freed chunks stay in the heap for the next ones: about the first chunk's 1,024 pages are faulted, not a
    quarter of every chunk's (62,000 with glibc's trim threshold left at 128 KiB)."""
    assert run(STREAM) < 8192
