"""Against a real ``initserve serve``: SIGTERM refuses new connections (within a second) and lets the
answers in flight finish (then exits 0), with one worker or several; a client that goes away and a generation
past its time limit leave nothing running."""

from __future__ import annotations

import hashlib
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from initserve.core import resolve
from initserve.formats import encode
from initserve.testing import ServerProcess

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

DOWNLOAD = {"method": "normal", "shape": str(1 << 22), "format": "raw", "seed": 3}  # 16 MiB
HUGE = f"/v1/tensor?method=normal&shape={1 << 30}&format=raw"  # 4 GiB: never meant to finish
BIG = {"INITSERVE_MAX_ELEMENTS": str(1 << 30)}


def metric(url: str, name: str, **labels: str) -> float:
    """The value of one sample of ``/metrics`` (0 if absent)."""
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def eventually(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks (USER_HZ = 100)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def refused_throughout(port: int, seconds: float) -> bool:
    """Every connection attempt for ``seconds`` is refused (none hangs in a backlog nobody accepts from)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not refused(port):
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_refuses_new_connections_lets_the_download_in_flight_finish_and_exits_0(workers: int) -> None:
    """With several workers too: uvicorn's own supervisor would keep the listening socket until exit, so
    that connections made during the drain hang, then are reset (:mod:`initserve.supervisor`)."""
    expected = hashlib.sha256()
    for chunk in encode(resolve("normal", [1 << 22], seed=3), "raw").chunks:
        expected.update(chunk)
    env = {"INITSERVE_SHUTDOWN_TIMEOUT": "20"}
    # a small receive buffer (no autotuning, which may reach 32 MiB): the answer stays in flight until read
    transport = httpx.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)])
    with ServerProcess(workers=workers, env=env) as server, httpx.Client(transport=transport, timeout=20) as client, \
            client.stream("GET", f"{server.url}/v1/tensor", params=DOWNLOAD) as response:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        received = hashlib.sha256()
        chunks = response.iter_raw(1 << 16)
        for _ in range(16):  # 1 MiB, then the signal
            received.update(next(chunks))
        server.process.send_signal(signal.SIGTERM)
        eventually(lambda: refused(server.port), seconds=10)  # in well under a second, unless the machine is busy
        assert refused_throughout(server.port, 0.5)
        with pytest.raises(httpx.ConnectError):  # a readiness probe fails: send new requests elsewhere
            httpx.get(f"{server.url}/readyz", timeout=2)
        assert server.process.poll() is None  # all this while the download is in flight
        for chunk in chunks:
            received.update(chunk)
            time.sleep(0.001)  # a slowish reader
        assert received.hexdigest() == expected.hexdigest()
        assert server.process.wait(timeout=20) == 0


def test_the_shutdown_timeout_cuts_what_does_not_finish() -> None:
    with ServerProcess(env={**BIG, "INITSERVE_SHUTDOWN_TIMEOUT": "1"}) as server, \
            httpx.stream("GET", f"{server.url}{HUGE}", timeout=20) as response:
        chunks = response.iter_raw(1 << 16)
        next(chunks)  # then read nothing: the stream stalls on the server's flow control
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
        with pytest.raises(httpx.RemoteProtocolError):
            for _ in chunks:
                pass


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One server for the tests that leave it running (a 4 GiB tensor needs 4 s of generation or more)."""
    with ServerProcess(env={**BIG, "INITSERVE_REQUEST_TIMEOUT": "0.5"}) as running:
        yield running


def test_a_client_that_goes_away_leaves_nothing_running(server: ServerProcess) -> None:
    before = metric(server.url, "initserve_rejections_total", reason="disconnected")
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(f"GET {HUGE} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        received = 0
        while received < 1 << 20:
            received += len(client.recv(1 << 16))
    eventually(lambda: metric(server.url, "initserve_rejections_total", reason="disconnected") == before + 1)
    assert metric(server.url, "initserve_generations_in_flight") == 0
    assert metric(server.url, "initserve_memory_budget_used_bytes") == 0
    cpu = cpu_seconds(server.process.pid)
    time.sleep(0.5)
    assert cpu_seconds(server.process.pid) - cpu < 0.2  # nothing is generating any more


def test_generation_past_the_time_limit_cuts_the_connection(server: ServerProcess) -> None:
    before = metric(server.url, "initserve_rejections_total", reason="timeout")
    received = 0
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", f"{server.url}{HUGE}") as response:
        assert response.status_code == 200 and response.headers["content-length"] == str(4 << 30)
        for chunk in response.iter_raw():
            received += len(chunk)
    assert 0 < received < 4 << 30  # the body stopped short of its Content-Length
    eventually(lambda: metric(server.url, "initserve_rejections_total", reason="timeout") == before + 1)
    assert metric(server.url, "initserve_generations_in_flight") == 0
