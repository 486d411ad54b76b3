"""Serving: a 1 GiB tensor downloaded from a live server against generating it in-process, and small requests
against the framework's floor.

Issue 8 asks that serving a large tensor cost little more than generating it — generation and sending
overlap — in bounded memory, and that small requests not pay much above what the web framework costs by
itself. This benchmark starts a real ``initserve serve`` process (:class:`initserve.testing.ServerProcess`,
one worker, access log off) and talks to it over loopback.

**Large.** A normal float32 tensor of 16384 × 16384 (2^28 elements, 1 GiB), as ``raw`` and as ``npy``,
fetched with ``GET /v1/tensor`` by an ``http.client`` connection that reads the body with ``readinto``
into a preallocated buffer in 16 MiB pieces; timed from sending the request to reading the last byte. The
in-process side iterates the very chunks the server sends — ``encode(encoder_source(resolve(...), fmt),
fmt).chunks``, what ``tensor_response`` streams — in the benchmark's process, timing only the calls that
produce them (all cores: the core's generation pool). That is the comparison of the target (download
throughput ≥ :data:`TARGET` × in-process), since the two sides then do the same generation and encoding
work and differ only in serving it; ``resolve(...).region()`` of the whole tensor, one allocation of 1 GiB,
is shown for information. Sides and formats are interleaved, ``--repeat`` rounds, and each keeps its best
time. Every download is checked before its time counts: status 200 and the SHA-256 of the received bytes
equal to the in-process chunks' (hashed outside the timed parts). During the downloads the summed ``VmRSS``
of the server's process tree is sampled every 100 ms (:mod:`bench.processes`); its ``VmHWM`` (peak RSS
since start-up) at the end is held to :data:`RSS_LIMIT`. CPU seconds of the server (from /proc) and of
this client are shown: the two share the machine.

**Small.** ``GET /v1/tensor`` of a 64 × 64 float32 tensor as ``raw`` (16 KiB), the same URL every time, by
one keep-alive ``http.client`` connection (sequential), then by a few threads with a keep-alive connection
each (concurrent); against a bare FastAPI app (:mod:`bench.floor`) served by uvicorn the same way, whose
endpoint answers the same bytes computed at start-up. Every answer's body is compared with the expected
bytes. The two servers alternate in ``ABBA`` order. Informational: the ratio ours / floor is what
initserve's own work per request (validation, canonical spec, ETag, middlewares, admission, encoding)
adds to the framework's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import importlib.util
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlencode

import numpy as np

from bench.floor import FloorProcess, tensor_bytes
from bench.processes import SAMPLE_INTERVAL, ProcessInfo, RssSampler, tree_info
from bench.ranges import size
from bench.report import Machine
from initserve.api.serving import encoder_source
from initserve.core import resolve
from initserve.formats import Chunk, Format, encode
from initserve.testing import ServerProcess

MIB = 1 << 20
TARGET = 0.8
"""Download throughput at least this × the in-process generation of the same chunks (issue 8)."""

RSS_LIMIT = 300 * 10**6
"""The server's peak RSS (``VmHWM``, every process of its tree) stays under 300 MB while it streams."""

READ_BYTES = 16 * MIB
"""The client reads the body in pieces of this many bytes."""

METHOD = "normal"
SEED = 8
FORMATS: tuple[Format, ...] = ("raw", "npy")


@dataclass(frozen=True)
class Sizes:
    """What is asked for, and how many small requests."""

    large: tuple[int, int]
    small: tuple[int, int]
    sequential: int  # small requests by one client, per server
    clients: int  # concurrent clients
    each: int  # small requests per concurrent client, per server


FULL = Sizes((16384, 16384), (64, 64), sequential=2000, clients=4, each=500)
QUICK = Sizes((2048, 2048), (64, 64), sequential=100, clients=2, each=40)
"""Smoke-test sizes: a 16 MiB tensor, a few hundred small requests."""


def query(shape: tuple[int, ...], fmt: Format) -> str:
    """The path and query of ``GET /v1/tensor`` for the benchmark's tensor of ``shape`` as ``fmt``."""
    return "/v1/tensor?" + urlencode({"method": METHOD, "shape": ",".join(map(str, shape)), "seed": SEED,
                                      "format": fmt})


class WrongAnswer(AssertionError):
    """An answer is not the bytes it must be."""


# ------------------------------------------------------------------------------------------------ large

@dataclass
class Stream:
    """One format of the large tensor: the times of each side, and the bytes every download must carry."""

    fmt: Format
    length: int = 0
    sha256: str = ""
    chunks: int = 0  # chunks the in-process side produced
    in_process: list[float] = field(default_factory=list)  # seconds producing the chunks
    in_process_cpu: list[float] = field(default_factory=list)  # CPU seconds of this process meanwhile
    download: list[float] = field(default_factory=list)  # seconds, request sent to last byte read
    server_cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)

    def rate(self, seconds: list[float]) -> float:
        """Best bytes/s."""
        return self.length / min(seconds)

    @property
    def ratio(self) -> float:
        """Best download throughput / best in-process throughput."""
        return self.rate(self.download) / self.rate(self.in_process)

    @property
    def met(self) -> bool:
        return self.ratio >= TARGET


def _timed(chunks: Iterator[Chunk]) -> Iterator[tuple[Chunk, float, float]]:
    """Each chunk with the wall and CPU seconds its production took."""
    while True:
        wall, cpu = time.perf_counter(), time.process_time()
        chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk, time.perf_counter() - wall, time.process_time() - cpu


def generate(stream: Stream, shape: tuple[int, ...]) -> None:
    """Produce the chunks the server would send, in this process; record the time and the bytes' SHA-256."""
    tensor = resolve(METHOD, list(shape), seed=SEED)
    digest, length, chunks, wall, cpu = hashlib.sha256(), 0, 0, 0.0, 0.0
    for chunk, seconds, cpu_seconds in _timed(encode(encoder_source(tensor, stream.fmt), stream.fmt).chunks):
        digest.update(chunk)
        length, chunks, wall, cpu = length + len(chunk), chunks + 1, wall + seconds, cpu + cpu_seconds
    stream.in_process.append(wall)
    stream.in_process_cpu.append(cpu)
    stream.length, stream.sha256, stream.chunks = length, digest.hexdigest(), chunks


def region_seconds(shape: tuple[int, ...]) -> float:
    """Seconds of ``resolve(...).region()`` of the whole tensor (one allocation, all cores)."""
    tensor = resolve(METHOD, list(shape), seed=SEED)
    start = time.perf_counter()
    values = tensor.region()
    elapsed = time.perf_counter() - start
    del values
    return elapsed


def download(port: int, path: str, buffer: bytearray) -> tuple[int, float]:
    """GET ``path`` into ``buffer``; the body's length and the seconds from the request to its last byte."""
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        if response.status != 200:
            raise WrongAnswer(f"GET {path}: status {response.status}: {response.read()[:300]!r}")
        length = int(response.headers["content-length"])
        view = memoryview(buffer)[:length]
        received = 0
        while received < length and (count := response.readinto(view[received : received + READ_BYTES])):
            received += count
        elapsed = time.perf_counter() - start
    finally:
        connection.close()
    if received != length:
        raise WrongAnswer(f"GET {path}: {received} bytes read, Content-Length {length}")
    return length, elapsed


def _cpu(root: int) -> float:
    return sum(p.cpu for p in tree_info(root))


def fetch(server: ServerProcess, stream: Stream, shape: tuple[int, ...], buffer: bytearray) -> None:
    """Download the stream's tensor, check its bytes against the in-process ones, record the times."""
    root = server.process.pid
    server_cpu, client_cpu = _cpu(root), time.process_time()
    length, seconds = download(server.port, query(shape, stream.fmt), buffer)
    stream.server_cpu.append(_cpu(root) - server_cpu)
    stream.client_cpu.append(time.process_time() - client_cpu)
    found = hashlib.sha256(memoryview(buffer)[:length]).hexdigest()
    if (length, found) != (stream.length, stream.sha256):
        raise WrongAnswer(f"{stream.fmt}: {length} bytes, sha256 {found[:12]}…; in-process {stream.length} bytes, "
                          f"sha256 {stream.sha256[:12]}…")
    stream.download.append(seconds)


@dataclass
class Large:
    """The large-tensor half of the run."""

    shape: tuple[int, int]
    streams: list[Stream]
    region: list[float]  # seconds of region() of the whole tensor
    rss_idle: int
    rss_samples: list[int]
    processes: list[ProcessInfo]  # at the end: RSS, VmHWM, CPU

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * 4

    @property
    def peak(self) -> int:
        """The server's peak RSS: the sum of its processes' ``VmHWM``."""
        return sum(p.hwm for p in self.processes)

    @property
    def met(self) -> bool:
        return all(s.met for s in self.streams) and self.peak < RSS_LIMIT


def run_large(sizes: Sizes, repeat: int, log: Callable[[str], None]) -> Large:
    """Serve the large tensor ``repeat`` times per format, interleaved with its in-process generation."""
    shape = sizes.large
    numel = math.prod(shape)
    streams = [Stream(fmt) for fmt in FORMATS]
    region = []
    env = {"INITSERVE_LOG_FORMAT": "off", "INITSERVE_MAX_ELEMENTS": str(max(numel, 1 << 30))}
    with ServerProcess(env=env) as server:
        root = server.process.pid
        rss_idle = sum(p.rss for p in tree_info(root))
        log(f"  server at {server.url}: {rss_idle / MIB:,.0f} MiB RSS idle; {size(numel * 4)} tensor, "
            f"{repeat} rounds")
        buffer = bytearray(numel * 4 + 4096)  # zero-filled: its pages are touched before any timing
        sampler = RssSampler(root)
        sampler.sample()
        sampler.start()
        try:
            for round_ in range(repeat):
                for stream in streams if round_ % 2 == 0 else streams[::-1]:
                    generate(stream, shape)
                    fetch(server, stream, shape, buffer)
                    log(f"  round {round_ + 1}, {stream.fmt}: in-process {stream.length / stream.in_process[-1] / MIB:,.0f} "
                        f"MiB/s, download {stream.length / stream.download[-1] / MIB:,.0f} MiB/s")
                region.append(region_seconds(shape))
        finally:
            sampler.stop()
        processes = tree_info(root)
    return Large(shape, streams, region, rss_idle, sampler.samples, processes)


# ------------------------------------------------------------------------------------------------ small

@dataclass
class Latencies:
    """Small requests to one server in one mode."""

    seconds: list[float] = field(default_factory=list)  # per request
    wall: float = 0.0  # summed over the rounds

    @property
    def p50(self) -> float:
        return float(np.percentile(self.seconds, 50))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.seconds, 99))

    @property
    def rate(self) -> float:
        """Requests per second."""
        return len(self.seconds) / self.wall


def _client(port: int, path: str, expected: bytes, count: int, into: list[float]) -> None:
    """``count`` GETs of ``path`` on one keep-alive connection; each latency appended to ``into``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(count):
            start = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            into.append(time.perf_counter() - start)
            if response.status != 200 or body != expected:
                raise WrongAnswer(f"GET {path}: status {response.status}, {len(body)} bytes "
                                  f"{'equal to' if body == expected else 'differing from'} the expected {len(expected)}")
    finally:
        connection.close()


def load(port: int, path: str, expected: bytes, clients: int, each: int, into: Latencies) -> None:
    """``clients`` threads of ``each`` requests at once; add their latencies and the wall time to ``into``."""
    found: list[list[float]] = [[] for _ in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(_client, port, path, expected, each, seconds) for seconds in found]:
            future.result()
    into.wall += time.perf_counter() - start
    for seconds in found:
        into.seconds.extend(seconds)


@dataclass(frozen=True)
class Mode:
    """How the small requests are sent."""

    label: str
    clients: int
    each: int  # requests per client and server, over the whole run


@dataclass
class Small:
    """The small-request half of the run: per mode, ours and the floor's latencies."""

    shape: tuple[int, int]
    modes: list[Mode]
    ours: dict[str, Latencies]
    floor: dict[str, Latencies]


ROUNDS = 2
"""Each mode runs in rounds of half its requests, servers in ``ABBA`` order so that drift hits both."""


def run_small(sizes: Sizes, log: Callable[[str], None]) -> Small:
    """Time small requests on initserve and on the floor app, alternating, in each mode."""
    shape = sizes.small
    expected = tensor_bytes(METHOD, shape, SEED)
    path = query(shape, "raw")
    modes = [Mode("sequential, 1 client", 1, sizes.sequential),
             Mode(f"concurrent, {sizes.clients} clients", sizes.clients, sizes.each)]
    ours = {mode.label: Latencies() for mode in modes}
    floor = {mode.label: Latencies() for mode in modes}
    with ServerProcess(env={"INITSERVE_LOG_FORMAT": "off"}) as server, FloorProcess(METHOD, shape, SEED) as bare:
        log(f"  initserve at {server.url}, floor app at {bare.url}")
        for port in (server.port, bare.port):  # warm-up: first requests import and compile lazily
            load(port, path, expected, 1, 20, Latencies())
        for mode in modes:
            per_round = max(1, mode.each // (2 * ROUNDS))
            for round_ in range(2 * ROUNDS):
                first, second = ((server.port, ours), (bare.port, floor))[:: 1 if round_ % 2 == 0 else -1]
                for port, into in (first, second):
                    load(port, path, expected, mode.clients, per_round, into[mode.label])
            log(f"  {mode.label}: p50 {ours[mode.label].p50 * 1e3:.2f} ms (floor "
                f"{floor[mode.label].p50 * 1e3:.2f} ms)")
    return Small(shape, modes, ours, floor)


# ------------------------------------------------------------------------------------------------ the run

@dataclass
class Run:
    """Everything the report shows."""

    large: Large
    small: Small
    quick: bool
    started: dt.datetime
    seconds: float


def run(*, quick: bool = False, repeat: int = 3, log: Callable[[str], None] = print) -> Run:
    """Both halves: the large downloads, then the small requests."""
    sizes = QUICK if quick else FULL
    started, clock = dt.datetime.now(dt.UTC), time.perf_counter()
    log("  large tensor: download against in-process generation")
    large = run_large(sizes, repeat, log)
    log("  small requests: initserve against the bare FastAPI app")
    small = run_small(sizes, log)
    return Run(large, small, quick, started, time.perf_counter() - clock)


# ------------------------------------------------------------------------------------------------ report

def _rate(nbytes: float, seconds: float) -> str:
    return f"{nbytes / MIB / seconds:,.0f} MiB/s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def large_table(large: Large) -> str:
    """One markdown row per format (also readable as plain text)."""
    lines = [("| format | bytes | in-process chunks | download | ratio download / in-process | target | status | "
              "server CPU | client CPU |"), "|---|---:|---:|---:|---:|---|---|---:|---:|"]
    for s in large.streams:
        best = s.download.index(min(s.download))
        lines.append(
            f"| {s.fmt} | {s.length:,} | {_rate(s.length, min(s.in_process))} | {_rate(s.length, min(s.download))} | "
            f"{s.ratio:.2f}× | ≥ {TARGET:g}× | {'met' if s.met else '**not met**'} | "
            f"{s.server_cpu[best]:.1f} s | {s.client_cpu[best]:.1f} s |")
    return "\n".join(lines)


def _where_the_time_goes(stream: Stream) -> str:
    """The best download's CPU against the in-process chunks': what sending adds on cores generation fills."""
    best = stream.download.index(min(stream.download))
    seconds, server, client = stream.download[best], stream.server_cpu[best], stream.client_cpu[best]
    in_seconds = min(stream.in_process)
    in_cpu = stream.in_process_cpu[stream.in_process.index(in_seconds)]
    cores = os.cpu_count() or 1
    floor = (server + client) / cores
    return (f"Where the time goes ({stream.fmt}): the best download used {server:.1f} CPU s in the server and "
            f"{client:.1f} s in the client over {seconds:.2f} s ({(server + client) / seconds:.2f} of {cores} cores "
            f"busy), where producing the chunks in-process used {in_cpu:.1f} CPU s over {in_seconds:.2f} s: sending "
            f"adds {server + client - in_cpu:.1f} CPU s (the kernel's copies into the socket and out of it, the event "
            f"loop, the client) on the cores that generation already keeps busy, so even with every core busy the "
            f"download could not take less than {floor:.2f} s, {in_seconds / floor:.2f}× the in-process rate.")


def large_summary(large: Large) -> str:
    """Throughput context, memory, and the verdict."""
    raw = large.streams[0]
    in_cpu = raw.in_process_cpu[raw.in_process.index(min(raw.in_process))]
    peaks = ", ".join(f"{p.role} {p.hwm / MIB:,.0f} MiB" for p in large.processes)
    return "\n\n".join([
        (f"In-process, {raw.chunks:,} chunks of at most 4 MiB; best of {len(raw.in_process)} "
         f"(raw: {min(raw.in_process):.2f} s, {in_cpu:.1f} CPU s). For information, `resolve(...).region()` of the "
         f"whole tensor (one {size(large.nbytes)} array) ran at {_rate(large.nbytes, min(large.region))} (best of "
         f"{len(large.region)}). Server and client CPU are those of the best download; the server's includes its "
         f"generation threads."),
        _where_the_time_goes(raw),
        (f"Server RSS (sum of `VmRSS` over its {len(large.processes)} process(es), sampled every "
         f"{SAMPLE_INTERVAL * 1e3:.0f} ms during the downloads): {large.rss_idle / MIB:,.0f} MiB idle, peak "
         f"{max(large.rss_samples, default=0) / MIB:,.0f} MiB; peak RSS since start-up (`VmHWM`): {peaks}: "
         f"**{large.peak / 1e6:,.0f} MB** (limit {RSS_LIMIT / 1e6:,.0f} MB: "
         f"{'met' if large.peak < RSS_LIMIT else '**not met**'})."),
        (f"Target (issue 8): a {size(large.nbytes)} tensor downloads at ≥ {TARGET:g}× the in-process generation "
         f"throughput of the same chunks, with the server's peak RSS under {RSS_LIMIT / 1e6:,.0f} MB: "
         f"{'met' if large.met else '**not met**'}."),
    ])


def small_table(small: Small) -> str:
    """One markdown row per mode."""
    lines = [("| clients | requests (each server) | p50 initserve | p50 floor | ratio | p99 initserve | p99 floor | "
              "req/s initserve | req/s floor | ratio |"), "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode in small.modes:
        ours, floor = small.ours[mode.label], small.floor[mode.label]
        lines.append(f"| {mode.label} | {len(ours.seconds):,} | {_ms(ours.p50)} | {_ms(floor.p50)} | "
                     f"{ours.p50 / floor.p50:.2f}× | {_ms(ours.p99)} | {_ms(floor.p99)} | {ours.rate:,.0f} | "
                     f"{floor.rate:,.0f} | {ours.rate / floor.rate:.2f}× |")
    return "\n".join(lines)


def protocol() -> str:
    """uvicorn's HTTP implementation and event loop as ``auto`` picks them in this environment."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http}, {loop}"


def markdown(result: Run, machine: Machine, *, command: str) -> str:
    """The serving section of docs/benchmarks.md (see :mod:`bench.sections`)."""
    import fastapi
    import uvicorn

    large, small = result.large, result.small
    return "\n".join([
        "## Serving",
        "",
        (f"A {size(large.nbytes)} normal float32 tensor ({' × '.join(map(str, large.shape))}) downloaded with "
         "`GET /v1/tensor` from a real `initserve serve` process (one worker) over loopback, against producing the "
         "same chunks in the benchmark's process (`encode(encoder_source(resolve(...), fmt), fmt).chunks`, what "
         "the server streams; all cores). The client is `http.client`, reading the body with `readinto` into a "
         f"preallocated buffer in {READ_BYTES // MIB} MiB pieces; a download is timed from sending the request "
         "to reading its last byte, and its bytes are checked (SHA-256 equal to the in-process chunks', hashed "
         "outside the timed parts). The sides and formats are interleaved; each keeps its best time. Then "
         f"`GET /v1/tensor` of a {' × '.join(map(str, small.shape))} float32 tensor as raw "
         f"({size(math.prod(small.shape) * 4)}, the same URL each time) by keep-alive `http.client` "
         "connections, against a bare FastAPI app served by uvicorn the same way (one worker, access log off) "
         "whose endpoint answers the same bytes computed at start-up: the framework's own floor. Every body is "
         "compared with the expected bytes; the two servers alternate (ABBA). Clients and server share the "
         "machine. This section is rewritten by every run of the serving benchmark."),
        "",
        f"- Command: `{command}`",
        f"- Date: {result.started.strftime('%Y-%m-%d %H:%M UTC')}; the run took {result.seconds:.0f} s",
        f"- Machine: {machine.cpu}, {machine.cores} logical cores (`os.cpu_count()`)",
        (f"- Python {machine.python}, numpy {machine.numpy}, uvicorn {uvicorn.__version__} ({protocol()}), "
         f"FastAPI {fastapi.__version__}{' (**quick** sizes)' if result.quick else ''}"),
        f"- initserve algorithm_version {machine.algorithm_version}",
        "",
        large_table(large),
        "",
        large_summary(large),
        "",
        small_table(small),
        "",
        ("Latency is from sending the request to reading the last byte of the answer; req/s is the requests "
         "answered over the wall time of their rounds. Informational: the ratio ours / floor is what initserve's "
         "own work per request adds to the framework's."),
        "",
    ])
