"""A real ``initserve serve`` process on a free loopback port, for integration tests (ours and yours).

::

    from initserve.testing import live_server

    with live_server(workers=2, env={"INITSERVE_MAX_ELEMENTS": "100000"}) as url:
        httpx.get(f"{url}/healthz")

The process is started with the ``initserve`` console script next to the running
interpreter (else ``python -m initserve.cli``), waited for until ``/healthz``
answers, and terminated (then killed) on exit. :class:`ServerProcess` is the same
with the process at hand (to kill a replica, say)::

    with ServerProcess() as server:
        httpx.get(f"{server.url}/healthz")
        server.kill()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Self

STARTUP_SECONDS = 30.0

CPU_FEATURE_SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "no-avx512, glibc without avx2/fma": {
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA",
    },
    "baseline (no avx2/avx512)": {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
                                  "INITSERVE_SIMD": "baseline"},
}
"""Environments that make numpy (and glibc's libm) pick other SIMD kernels in a new process, and initserve's
compiled kernels their baseline build (``INITSERVE_SIMD``, see core/_simd.h): the bytes served must not change
(x86-64 feature names; numpy ignores the variable's names it does not know)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def initserve_command() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("initserve")
    if script.exists():
        return [str(script)]
    found = shutil.which("initserve")
    return [found] if found else [sys.executable, "-m", "initserve.cli"]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ServerProcess:
    """One ``initserve serve`` process on a free port, as a context manager that exposes the process.

    :func:`live_server` is the usual entry point; use this class when a test must act on the
    process itself, e.g. :meth:`kill` a replica behind a proxy. With ``workers=1`` the process
    serves requests itself, so killing it takes the whole server down (with more workers it is
    uvicorn's supervisor, and its children would outlive a SIGKILL).

    The server's output goes to a temporary file rather than a pipe: nobody reads a pipe while
    the server runs, and a full pipe (about 64 KiB of access log) would block the server.
    """

    def __init__(self, *, workers: int = 1, env: Mapping[str, str] | None = None) -> None:
        self.workers = workers
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._output: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running process (only between ``__enter__`` and ``__exit__``)."""
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process

    def output(self) -> str:
        """Everything the server has printed so far."""
        if self._output is None:
            return ""
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the process, as a crash or an OOM kill would, and reap it."""
        self.process.kill()
        self.process.wait()

    def command(self) -> list[str]:
        """The command line that serves on :attr:`port` (a subclass may serve something else)."""
        return [*initserve_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(self.workers)]

    def __enter__(self) -> Self:
        self._output = tempfile.TemporaryFile()
        self._process = subprocess.Popen(self.command(), env=self.env, stdout=self._output,
                                         stderr=subprocess.STDOUT)
        try:
            self._wait_healthy()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _healthy(self.url):
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer /healthz within {STARTUP_SECONDS:g} s:\n{self.output()}")
            time.sleep(0.1)

    def __exit__(self, *exc_info: object) -> None:
        """Terminate (then kill) the process if it still runs, and drop its output."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._output is not None:
            self._output.close()
            self._output = None


@contextmanager
def live_server(*, workers: int = 1, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Serve on a free port with ``workers`` processes and extra environment ``env``; yield the base URL.

    Raises :class:`RuntimeError` (with the server's output) if it exits or does not answer in time.
    """
    with ServerProcess(workers=workers, env=env) as server:
        yield server.url
