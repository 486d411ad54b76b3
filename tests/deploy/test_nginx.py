"""Real nginx, running the repo's ``deploy/nginx/initserve.conf`` unchanged, in front of two real servers.

The test writes only what differs from the compose stack, next to its own top-level
``nginx.conf``: ``initserve.upstream.conf`` (two local ``initserve serve`` processes instead of
the compose service) and ``initserve.listen.conf`` (a free port instead of 8080). Everything
that decides caching, slicing, retries and body limits is the repo's file. Skipped where
nginx is not installed (``.ci/run`` installs Debian's).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from initserve.core import resolve
from initserve.testing import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
INITSERVE_CONF = ROOT / "deploy" / "nginx" / "initserve.conf"
MIB = 1 << 20
STARTUP_SECONDS = 15.0


def nginx_binary() -> str | None:
    """``nginx`` on PATH, else Debian's /usr/sbin/nginx (not on a non-root user's PATH)."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


@dataclass
class Stack:
    """nginx on ``url`` in front of ``backends``."""

    url: str
    backends: list[ServerProcess]
    prefix: Path


def top_level_conf(prefix: Path) -> str:
    """The test's nginx.conf: foreground master, everything writable under ``prefix``, then the repo's file.

    Debian's nginx has its temporary directories compiled in under /var/lib/nginx; they move
    under the prefix so that the test runs as any user. As root, the workers stay root: they
    must reach the prefix inside pytest's private (0700) temporary directory.
    """
    temp = prefix / "temp"
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""daemon off;
master_process on;
worker_processes 2;
pid {prefix}/nginx.pid;
{user}
events {{
    worker_connections 256;
}}

http {{
    access_log {prefix}/access.log;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;

    include {INITSERVE_CONF};
}}
"""


def write_configuration(prefix: Path, backends: list[ServerProcess], port: int) -> Path:
    """Write nginx.conf and the two small files the repo's initserve.conf includes; return nginx.conf."""
    (prefix / "temp").mkdir(parents=True, exist_ok=True)
    servers = "".join(f"server 127.0.0.1:{backend.port} max_fails=1 fail_timeout=5s;\n" for backend in backends)
    (prefix / "initserve.upstream.conf").write_text(servers)
    (prefix / "initserve.listen.conf").write_text(f"listen 127.0.0.1:{port};\n")
    conf = prefix / "nginx.conf"
    conf.write_text(top_level_conf(prefix))
    return conf


def wait_for_nginx(process: subprocess.Popen[bytes], url: str, error_log: Path) -> None:
    """Return once nginx answers /healthz (through a backend); raise with its error log if it exits or hangs."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            log = error_log.read_text() if error_log.exists() else ""
            raise RuntimeError(f"nginx exited with {process.returncode}:\n{log}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nginx did not answer within {STARTUP_SECONDS:g} s")
        time.sleep(0.05)


@contextmanager
def running_nginx(binary: str, prefix: Path, conf: Path, url: str) -> Iterator[None]:
    """Run nginx in the foreground; on exit, a graceful stop (SIGQUIT), then SIGKILL if it lingers."""
    error_log = prefix / "error.log"
    process = subprocess.Popen([binary, "-p", f"{prefix}/", "-c", str(conf), "-e", str(error_log)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_nginx(process, url, error_log)
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def nginx_stack(prefix: Path) -> Iterator[Stack]:
    """Two ``initserve serve`` processes (one worker each, so a SIGKILL takes one down) behind nginx."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (.ci/run installs Debian's nginx under CI)")
    with ExitStack() as stack, ThreadPoolExecutor(max_workers=2) as starting:
        # Started side by side: each takes seconds to import its stack and answer /healthz.
        backends = list(starting.map(stack.enter_context, [ServerProcess(), ServerProcess()]))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        stack.enter_context(running_nginx(binary, prefix, write_configuration(prefix, backends, port), url))
        yield Stack(url=url, backends=backends, prefix=prefix)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with nginx_stack(tmp_path_factory.mktemp("nginx")) as running:
        yield running


def npy(content: bytes) -> np.ndarray:
    """The array of an .npy body."""
    array: np.ndarray = np.load(io.BytesIO(content), allow_pickle=False)
    return array


def test_a_repeated_get_is_a_cache_hit_with_the_backends_bytes(stack: Stack) -> None:
    params = {"method": "xavier_uniform", "shape": "64,32", "seed": "11", "name": "fc.weight"}
    with httpx.Client(base_url=stack.url) as proxy:
        first = proxy.get("/v1/tensor", params=params)
        second = proxy.get("/v1/tensor", params=params)
    direct = httpx.get(f"{stack.backends[0].url}/v1/tensor", params=params)
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
    assert first.content == second.content == direct.content
    assert first.headers["etag"] == second.headers["etag"] == direct.headers["etag"]
    assert int(second.headers["content-length"]) == len(direct.content)
    want = resolve(method="xavier_uniform", shape=[64, 32], seed=11, name="fc.weight").region()
    np.testing.assert_array_equal(npy(second.content), want)


def test_ranges_are_served_from_cached_slices(stack: Stack) -> None:
    params = {"method": "normal", "shape": "768,1024", "seed": "5"}  # 3 MiB of float32 + the npy header
    full = httpx.get(f"{stack.backends[1].url}/v1/tensor", params=params).content
    assert len(full) > 3 * MIB
    with httpx.Client(base_url=stack.url) as proxy:
        def ranged(header: str) -> httpx.Response:
            return proxy.get("/v1/tensor", params=params, headers={"Range": header})

        across = ranged(f"bytes={MIB - 100}-{MIB + 99}")  # spans the first slice boundary
        assert across.status_code == 206
        assert across.headers["content-range"] == f"bytes {MIB - 100}-{MIB + 99}/{len(full)}"
        assert across.content == full[MIB - 100:MIB + 100]
        assert across.headers["x-cache-status"] == "MISS"

        again = ranged(f"bytes={MIB - 100}-{MIB + 99}")
        assert (again.status_code, again.headers["x-cache-status"]) == (206, "HIT")
        assert again.content == across.content

        inside = ranged(f"bytes={MIB + 10}-{MIB + 20}")  # within the slice the first range cached
        assert (inside.headers["x-cache-status"], inside.content) == ("HIT", full[MIB + 10:MIB + 21])

        suffix = ranged("bytes=-1000")
        assert suffix.status_code == 206
        assert suffix.headers["content-range"] == f"bytes {len(full) - 1000}-{len(full) - 1}/{len(full)}"
        assert suffix.content == full[-1000:]

        tail = ranged(f"bytes={2 * MIB + 5}-")
        assert (tail.status_code, tail.content) == (206, full[2 * MIB + 5:])

        whole = proxy.get("/v1/tensor", params=params)
        assert (whole.status_code, whole.content) == (200, full)
        np.testing.assert_array_equal(npy(whole.content), resolve(method="normal", shape=[768, 1024], seed=5).region())

        beyond = ranged(f"bytes={len(full) + 10}-")
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(full)}"


def test_conditional_get_and_head_are_answered_from_the_cache(stack: Stack) -> None:
    params = {"method": "he_normal", "shape": "128,64", "seed": "3"}
    with httpx.Client(base_url=stack.url) as proxy:
        fetched = proxy.get("/v1/tensor", params=params)
        not_modified = proxy.get("/v1/tensor", params=params, headers={"If-None-Match": fetched.headers["etag"]})
        head = proxy.head("/v1/tensor", params=params)
    assert not_modified.status_code == 304
    assert not_modified.headers["etag"] == fetched.headers["etag"]
    assert (head.status_code, head.headers["x-cache-status"]) == (200, "HIT")
    assert int(head.headers["content-length"]) == len(fetched.content)


def test_posts_pass_through_unsliced_and_uncached(stack: Stack) -> None:
    spec: dict[str, Any] = {"method": "kaiming_uniform", "shape": [512, 1024], "seed": 9, "name": "big"}  # 2 MiB
    direct = httpx.post(f"{stack.backends[0].url}/v1/tensor", json=spec).content
    with httpx.Client(base_url=stack.url) as proxy:
        answers = [proxy.post("/v1/tensor", json=spec) for _ in range(2)]
        ranged = proxy.post("/v1/tensor", json=spec, headers={"Range": "bytes=100-199"})
    for answer in answers:
        assert answer.status_code == 200
        assert answer.headers.get("x-cache-status") is None  # nginx never looked in the cache
        assert answer.content == direct
    assert len(direct) > 2 * MIB
    np.testing.assert_array_equal(npy(direct), resolve(**spec).region())
    assert (ranged.status_code, ranged.headers["content-range"]) == (206, f"bytes 100-199/{len(direct)}")
    assert ranged.content == direct[100:200]


def test_empty_bodies_and_errors_pass_through(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url) as proxy:
        empty = proxy.get("/v1/tensor", params={"method": "zeros", "shape": "0", "format": "raw"})
        empty_range = proxy.get("/v1/tensor", params={"method": "zeros", "shape": "0", "format": "raw"},
                                headers={"Range": "bytes=0-9"})
        invalid = [proxy.get("/v1/tensor", params={"method": "normal", "shape": "-1"}) for _ in range(2)]
        health = [proxy.get("/healthz") for _ in range(2)]
    assert (empty.status_code, empty.content) == (200, b"")  # the slice's range was not satisfiable
    assert (empty_range.status_code, empty_range.headers["content-range"]) == (416, "bytes */0")  # the client's
    assert [answer.status_code for answer in invalid] == [422, 422]
    assert invalid[1].headers["content-type"] == "application/problem+json"
    assert invalid[1].headers.get("x-cache-status") != "HIT"
    assert [answer.json()["status"] for answer in health] == ["ok", "ok"]
    assert all("x-cache-status" not in answer.headers for answer in health)


@dataclass
class Fetched:
    """One answer of the kill test: status, every byte, and whether a Range request had to finish it."""

    seed: int
    status: int
    content: bytes
    resumed: bool


def read(proxy: httpx.Client, seed: int, headers: dict[str, str]) -> tuple[httpx.Response, bytes, bool]:
    """Ask for uniform 32×32 with ``seed`` (GET for even seeds, POST for odd ones).

    Return the response, the bytes received and whether they are all there.
    """
    if seed % 2:
        stream = proxy.stream("POST", "/v1/tensor", headers=headers,
                              json={"method": "uniform", "shape": [32, 32], "seed": seed})
    else:
        stream = proxy.stream("GET", "/v1/tensor", headers=headers,
                              params={"method": "uniform", "shape": "32,32", "seed": seed})
    received = bytearray()
    with stream as response:
        try:
            for chunk in response.iter_bytes():
                received += chunk
        except httpx.RemoteProtocolError:  # the body stopped short of its Content-Length
            return response, bytes(received), False
    return response, bytes(received), True


def fetch(proxy: httpx.Client, seed: int) -> Fetched:
    """A distinct, uncached tensor, resumed with a Range request if its answer is cut short.

    nginx re-sends a request whose replica fails before answering; it cannot re-send one whose
    answer has begun (its status and headers are already with the client), and a streamed
    answer begins before its body is generated. Such an answer arrives short of its
    Content-Length, and a client finishes it as any download is resumed: Range from the
    first missing byte, If-Range with its ETag.
    """
    first, content, complete = read(proxy, seed, {})
    if complete:
        return Fetched(seed, first.status_code, content, resumed=False)
    rest, tail, complete = read(proxy, seed, {"Range": f"bytes={len(content)}-", "If-Range": first.headers["etag"]})
    assert (rest.status_code, complete) == (206, True)
    return Fetched(seed, first.status_code, content + tail, resumed=True)


def test_killing_a_backend_loses_no_request(tmp_path: Path) -> None:
    """A replica SIGKILLed in the middle of a stream of distinct, uncached GETs and POSTs: every one is answered."""
    count, killed_after, threads = 200, 60, 4
    enough = threading.Event()
    answered: list[Fetched] = []

    def counted(proxy: httpx.Client, seed: int) -> Fetched:
        answered.append(fetch(proxy, seed))
        if len(answered) >= killed_after:
            enough.set()
        return answered[-1]

    with (nginx_stack(tmp_path) as running, httpx.Client(base_url=running.url, timeout=30) as proxy,
          ThreadPoolExecutor(max_workers=threads) as pool):
        futures = [pool.submit(counted, proxy, seed) for seed in range(count)]
        assert enough.wait(timeout=30)
        victim = running.backends[0]
        victim.kill()
        results = [future.result() for future in futures]
        served = [backend.output().count("/v1/tensor") for backend in running.backends]
        error_log = (running.prefix / "error.log").read_text()

    assert [result.status for result in results] == [200] * count
    for result in results:
        want = resolve(method="uniform", shape=[32, 32], seed=result.seed).region()
        np.testing.assert_array_equal(npy(result.content), want)
    assert sum(result.resumed for result in results) <= threads  # only answers under way at the kill
    assert f"127.0.0.1:{victim.port}" in error_log  # nginx met the dead replica and went to the other one
    assert served[0] > 0 and served[1] > 0, served  # the victim was in the rotation until it died
    assert served[1] >= count - served[0]  # the survivor answered everything after that
