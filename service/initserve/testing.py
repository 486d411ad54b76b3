"""A real ``initserve serve`` process on a free loopback port, for integration tests (ours and yours).

::

    from initserve.testing import live_server

    with live_server(workers=2, env={"INITSERVE_MAX_ELEMENTS": "100000"}) as url:
        httpx.get(f"{url}/healthz")

The process is started with the ``initserve`` console script next to the running
interpreter (else ``python -m initserve.cli``), waited for until ``/healthz``
answers, and terminated (then killed) on exit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

STARTUP_SECONDS = 30.0


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


@contextmanager
def live_server(*, workers: int = 1, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Serve on a free port with ``workers`` processes and extra environment ``env``; yield the base URL.

    Raises :class:`RuntimeError` (with the server's output) if it exits or does not answer in time.
    """
    port = free_port()
    command = [*initserve_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _healthy(url):
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                raise RuntimeError(f"server exited with {process.returncode}:\n{output}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer /healthz within {STARTUP_SECONDS:g} s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
