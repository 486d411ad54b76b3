"""Load: concurrent clients on a live multi-worker server, a seeded mix of requests, bounded in time and count.

Issue 7 asks that initserve keep answering under load and refuse what would hurt it, and, as
proof, for a load benchmark with "zero unexpected statuses, server healthy after" that shows the
server's total RSS stays bounded. This benchmark starts a real ``initserve serve`` process
(:class:`initserve.testing.ServerProcess`, 2 workers by default) on loopback, with a memory budget
small enough that back-pressure engages under the mix (``INITSERVE_MEMORY_BUDGET``, 256 MiB) and
access logs off, and drives it from one asyncio ``httpx.AsyncClient`` (as many connections as
clients): 32 concurrent clients for 60 s or 100 000 requests, whichever comes first (the answers
in flight at that moment are read to their end). Each client draws request kinds from a fixed
mix with its own seeded generator, so the sequence of requests is the same on every run
(:data:`KINDS`): small tensors (64 × 64, GET and POST, every format, fresh seeds so that nothing
can be served from a cache), large streams (64–256 MiB raw, read to the last byte), a small MLP
as safetensors, statistics of a moderate tensor, a small signal-propagation report, byte ranges
of a 4 GiB virtual tensor, and bad requests (422, 413, 404).

Each request has its expected statuses: the right answer (200, 206, or the bad request's own 4xx
as problem+json), and for the requests that generate, 503 ``overloaded`` with ``Retry-After`` when
the memory budget is full. A right answer's body is checked (length, safetensors layout, JSON contents,
``Content-Range``). Anything else — another status, a 503 without ``Retry-After`` or for another
reason (the time limit), a wrong
body, a timeout, a connection error — is *unexpected* and reported with an example. After a
503 the client sleeps ``Retry-After`` capped to 1 s, then draws its next request.

Measured: requests/s overall and per kind; latency (sending the request to reading the last
byte) p50/p99/max per kind over its right answers; counts by status; bytes received; the RSS
of the server's process tree (supervisor, workers and multiprocessing's resource tracker: the
sum of ``VmRSS`` from /proc, sampled every 100 ms), its peak, and each process's ``VmHWM`` at
the end; CPU seconds of the server and of the client, which share the machine. After the load:
``/healthz`` is 200, a known tensor's bytes hash to what ``initserve.core.resolve`` gives, the
in-flight gauge of ``/metrics`` is back to 0 (when the server has ``/metrics``), the server's
processes are the ones it started with, and its output holds no traceback.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from bench.processes import SAMPLE_INTERVAL, ProcessInfo, RssSampler, process_tree, tree_info
from bench.ranges import npy_header, size
from bench.report import Machine
from initserve.core import resolve
from initserve.testing import ServerProcess

MIB = 1 << 20
RETRY_CAP = 1.0
"""Longest sleep after a 503, whatever its ``Retry-After`` says: the benchmark wants load, not politeness."""

KEEPALIVE_EXPIRY = 2.0
"""Seconds an idle pooled connection may be reused: below uvicorn's 5 s keep-alive timeout (httpx's default
expiry is also 5 s), so that a request never goes out on a connection the server is closing at that moment — a
connection error that would come from the client's configuration, not from the server's behaviour under load."""

CHECK_SEED = 20261122
"""Seed of the tensor fetched after the load and compared with ``initserve.core.resolve``."""


@dataclass(frozen=True)
class Sizes:
    """What the requests of the mix ask for."""

    small: tuple[int, int]  # small tensors
    large_mib: tuple[int, ...]  # large raw float32 streams, MiB each
    stats: tuple[int, int]  # the tensor of /v1/stats
    virtual: tuple[int, int]  # the float32 tensor whose byte ranges are asked
    range_bytes: int
    mlp: tuple[int, ...]  # widths of the /v1/model MLP
    propagation: tuple[int, int, int]  # width, depth, batch of /v1/stats/propagation


FULL = Sizes((64, 64), (64, 128, 256), (1024, 1024), (32768, 32768), MIB, (784, 256, 128, 10), (128, 4, 128))
QUICK = Sizes((64, 64), (4, 8, 16), (256, 256), (2048, 2048), 64 << 10, (784, 256, 128, 10), (128, 4, 128))
"""Smoke-test sizes: 4–16 MiB streams, statistics of 256², 64 KiB ranges of a 16 MiB tensor."""


@dataclass(frozen=True)
class Options:
    """How hard and how long to load the server, and how it is configured."""

    duration: float = 60.0
    clients: int = 32
    max_requests: int = 100_000
    workers: int = 2
    memory_budget: int = 256 * MIB
    seed: int = 7
    timeout: float = 60.0  # httpx timeout of each read/write/connect: a stalled answer is unexpected
    quick: bool = False

    @property
    def sizes(self) -> Sizes:
        return QUICK if self.quick else FULL

    def env(self) -> dict[str, str]:
        """The server's extra environment (``INITSERVE_*`` settings it does not know are ignored)."""
        return {"INITSERVE_MEMORY_BUDGET": str(self.memory_budget), "INITSERVE_LOG_FORMAT": "off"}


# ------------------------------------------------------------------------------------------------ requests

Check = Callable[[httpx.Response, bytes], str | None]
"""Given a right-status answer and its body (empty when only counted), what is wrong with it, or None."""


@dataclass(frozen=True)
class Request:
    """One request of the mix and what its answer must be."""

    kind: str
    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    json_body: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    ok: int = 200  # the status of the right answer
    back_pressure: bool = True  # whether a 503 overloaded with Retry-After (memory budget full) is expected
    keep_body: bool = True  # False: the body is only counted (large streams)
    length: int | None = None  # the body's exact length, when known
    check: Check | None = None

    def describe(self) -> str:
        query = "&".join(f"{key}={value}" for key, value in self.params.items())
        return f"{self.method} {self.path}{'?' + query if query else ''}"


def _length_problem(response: httpx.Response, body_size: int, length: int | None) -> str | None:
    declared = response.headers.get("content-length")
    if declared is not None and int(declared) != body_size:
        return f"{body_size} bytes read, Content-Length {declared}"
    if length is not None and body_size != length:
        return f"{body_size} bytes, expected {length}"
    return None


def safetensors_problem(body: bytes, tensors: int | None = None) -> str | None:
    """What is wrong with a float32 safetensors file ``body`` (header, offsets, sizes), or None."""
    if len(body) < 8:
        return f"{len(body)} bytes: no safetensors header"
    header_length = int.from_bytes(body[:8], "little")
    try:
        header = json.loads(body[8 : 8 + header_length])
    except ValueError as exc:
        return f"unreadable safetensors header: {exc}"
    entries = {name: entry for name, entry in header.items() if name != "__metadata__"}
    if tensors is not None and len(entries) != tensors:
        return f"{len(entries)} tensors, expected {tensors}"
    end = 0
    for name, entry in entries.items():
        start, stop = entry["data_offsets"]
        if stop - start != math.prod(entry["shape"]) * 4:
            return f"tensor {name!r}: {stop - start} bytes for shape {entry['shape']}"
        end = max(end, stop)
    if 8 + header_length + end != len(body):
        return f"{len(body)} bytes, the header describes {8 + header_length + end}"
    return None


def _json(body: bytes) -> Any:
    return json.loads(body)


def _check_json_tensor(elements: int) -> Check:
    def check(response: httpx.Response, body: bytes) -> str | None:
        data = _json(body)["data"]
        return None if len(data) == elements else f"{len(data)} values, expected {elements}"
    return check


def _check_safetensors(tensors: int) -> Check:
    return lambda response, body: safetensors_problem(body, tensors)


def _check_problem(response: httpx.Response, body: bytes) -> str | None:
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("application/problem+json"):
        return f"content-type {content_type!r}, expected application/problem+json"
    status = _json(body).get("status")
    return None if status == response.status_code else f"problem status {status!r}"


SMALL_METHODS = ("normal", "uniform", "xavier_uniform", "kaiming_normal", "trunc_normal", "orthogonal")


def _seed(rng: random.Random) -> int:
    return rng.randrange(1 << 63)


def small_get(rng: random.Random, sizes: Sizes) -> Request:
    """``GET /v1/tensor``: a small tensor as raw or npy, a fresh seed."""
    fmt = rng.choice(("raw", "npy"))
    shape = sizes.small
    data = math.prod(shape) * 4
    params = {"method": rng.choice(SMALL_METHODS), "shape": ",".join(map(str, shape)), "seed": str(_seed(rng)),
              "format": fmt}
    return Request("small GET", "GET", "/v1/tensor", params,
                   length=data + (len(npy_header(shape)) if fmt == "npy" else 0))


def small_post(rng: random.Random, sizes: Sizes) -> Request:
    """``POST /v1/tensor``: a small named tensor as safetensors or JSON, a fresh seed."""
    fmt = rng.choice(("safetensors", "json"))
    elements = math.prod(sizes.small)
    body = {"method": rng.choice(SMALL_METHODS), "shape": list(sizes.small), "seed": _seed(rng),
            "name": f"layers.{rng.randrange(100)}.weight"}
    check = _check_safetensors(1) if fmt == "safetensors" else _check_json_tensor(elements)
    return Request("small POST", "POST", "/v1/tensor", {"format": fmt}, json_body=body, check=check)


def large_stream(rng: random.Random, sizes: Sizes) -> Request:
    """``GET /v1/tensor``: a large raw float32 tensor, read to its end and counted, not kept."""
    mib = rng.choice(sizes.large_mib)
    shape = (mib * MIB // 4 // 4096, 4096)
    params = {"method": rng.choice(("normal", "uniform", "kaiming_uniform")), "shape": f"{shape[0]},{shape[1]}",
              "seed": str(_seed(rng)), "format": "raw"}
    return Request("large stream", "GET", "/v1/tensor", params, keep_body=False, length=mib * MIB)


def model(rng: random.Random, sizes: Sizes) -> Request:
    """``POST /v1/model``: a small MLP (weights and biases) as safetensors."""
    widths = sizes.mlp
    layers = [{"type": "linear", "in_features": a, "out_features": b, "nonlinearity": "relu"}
              for a, b in itertools.pairwise(widths)]
    body = {"scheme": rng.choice(("framework", "he", "xavier")), "seed": _seed(rng), "layers": layers}
    return Request("model", "POST", "/v1/model", {"format": "safetensors"}, json_body=body,
                   check=_check_safetensors(2 * len(layers)))


def stats(rng: random.Random, sizes: Sizes) -> Request:
    """``POST /v1/stats``: statistics of a moderate tensor."""
    elements = math.prod(sizes.stats)
    body = {"method": rng.choice(("normal", "xavier_uniform", "trunc_normal")), "shape": list(sizes.stats),
            "seed": _seed(rng)}

    def check(response: httpx.Response, answer: bytes) -> str | None:
        n = _json(answer)["tensors"][0]["n"]
        return None if n == elements else f"n={n}, expected {elements}"
    return Request("stats", "POST", "/v1/stats", json_body=body, check=check)


def propagation(rng: random.Random, sizes: Sizes) -> Request:
    """``POST /v1/stats/propagation``: a few tanh layers, a small batch."""
    width, depth, batch = sizes.propagation
    body = {"scheme": rng.choice(("small_normal", "xavier", "he")), "seed": _seed(rng), "batch_size": batch,
            "layers": [{"type": "linear", "in_features": width, "out_features": width, "nonlinearity": "tanh"}
                       for _ in range(depth)]}

    def check(response: httpx.Response, answer: bytes) -> str | None:
        layers = len(_json(answer)["layers"])
        return None if layers == depth else f"{layers} layers, expected {depth}"
    return Request("propagation", "POST", "/v1/stats/propagation", json_body=body, check=check)


def byte_range(rng: random.Random, sizes: Sizes) -> Request:
    """``GET /v1/tensor`` with ``Range``: a range anywhere in a virtual raw tensor (206)."""
    total = math.prod(sizes.virtual) * 4
    start = rng.randrange(total - sizes.range_bytes + 1)
    stop = start + sizes.range_bytes - 1
    params = {"method": "normal", "shape": ",".join(map(str, sizes.virtual)), "seed": str(rng.randrange(1000)),
              "format": "raw"}

    def check(response: httpx.Response, body: bytes) -> str | None:
        found = response.headers.get("content-range")
        return None if found == f"bytes {start}-{stop}/{total}" else f"Content-Range {found!r}"
    return Request("range", "GET", "/v1/tensor", params, headers={"Range": f"bytes={start}-{stop}"}, ok=206,
                   length=sizes.range_bytes, check=check)


BAD_REQUESTS: tuple[tuple[str, int, dict[str, Any]], ...] = (
    ("unknown method", 422, {"method": "GET", "path": "/v1/tensor",
                             "params": {"method": "no_such_method", "shape": "4,4"}}),
    ("invalid JSON body", 422, {"method": "POST", "path": "/v1/tensor", "content": b"{not json",
                                "headers": {"content-type": "application/json"}}),
    ("over INITSERVE_MAX_ELEMENTS", 413, {"method": "GET", "path": "/v1/tensor",
                                          "params": {"method": "normal", "shape": "65536,65536"}}),
    ("unknown path", 404, {"method": "GET", "path": "/v1/no-such-endpoint"}),
)
"""What a bad request may be: its label, its status, the request. None of them may be a 503: refused before any
work, they never take part of the memory budget."""


def bad(rng: random.Random, sizes: Sizes) -> Request:
    """A request refused with its own 4xx problem+json, before any work."""
    _, status, request = rng.choice(BAD_REQUESTS)
    return Request("bad", ok=status, back_pressure=False, check=_check_problem, **request)


@dataclass(frozen=True)
class Kind:
    """A kind of request, its share of the mix, and how one is drawn."""

    name: str
    weight: int
    build: Callable[[random.Random, Sizes], Request]
    summary: Callable[[Sizes], str]
    expected: str


def _shape(shape: tuple[int, ...]) -> str:
    return " × ".join(map(str, shape))


KINDS = (
    Kind("small GET", 30, small_get,
         lambda s: f"`GET /v1/tensor` {_shape(s.small)}, raw or npy, one of {len(SMALL_METHODS)} methods, fresh seed",
         "200, 503 overloaded + Retry-After"),
    Kind("small POST", 15, small_post,
         lambda s: f"`POST /v1/tensor` {_shape(s.small)} named, safetensors or json, fresh seed",
         "200, 503 overloaded + Retry-After"),
    Kind("large stream", 2, large_stream,
         lambda s: f"`GET /v1/tensor` raw float32 of {'/'.join(map(str, s.large_mib))} MiB, read to the end",
         "200, 503 overloaded + Retry-After"),
    Kind("model", 8, model,
         lambda s: f"`POST /v1/model` MLP {'→'.join(map(str, s.mlp))} as safetensors",
         "200, 503 overloaded + Retry-After"),
    Kind("stats", 5, stats, lambda s: f"`POST /v1/stats` of a {_shape(s.stats)} tensor", "200, 503 overloaded + Retry-After"),
    Kind("propagation", 5, propagation,
         lambda s: (f"`POST /v1/stats/propagation` {s.propagation[1]} tanh layers of {s.propagation[0]}, "
                    f"batch {s.propagation[2]}"),
         "200, 503 overloaded + Retry-After"),
    Kind("range", 20, byte_range,
         lambda s: (f"`GET /v1/tensor` `Range` of {size(s.range_bytes)} anywhere in a "
                    f"{size(math.prod(s.virtual) * 4)} raw tensor"),
         "206, 503 overloaded + Retry-After"),
    Kind("bad", 15, bad,
         lambda s: "; ".join(f"{label} ({status})" for label, status, _ in BAD_REQUESTS),
         "its 4xx as problem+json (never 503)"),
)
"""The mix, in the order of the report. Weights are shares of the requests drawn (of 100), not of the time spent."""


# ------------------------------------------------------------------------------------------------ the load

@dataclass
class Tally:
    """What one kind's requests got."""

    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)  # right answers
    back_off: list[float] = field(default_factory=list)  # 503 answers
    bytes: int = 0
    unexpected: int = 0

    @property
    def requests(self) -> int:
        return sum(self.outcomes.values())

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self.seconds, q)) if self.seconds else None


@dataclass(frozen=True)
class Unexpected:
    """One unexpected outcome, as an example for the report."""

    kind: str
    outcome: str
    request: str
    detail: str
    at: float  # seconds into the load when the request was sent
    seconds: float  # from sending it to the outcome


@dataclass
class LoadState:
    """Shared by the clients (one event loop: no lock). Times are ``time.monotonic()``."""

    start: float
    deadline: float
    max_requests: int
    perf_start: float = field(default_factory=time.perf_counter)  # the same moment as ``start``, for latencies
    issued: int = 0
    last_issue: float = 0.0  # when the last request was sent
    end: float = 0.0  # when the last answer was read (or the clients were stopped)
    finished: bool = True  # False: the clients were stopped by the overall time bound (a hang)
    tallies: dict[str, Tally] = field(default_factory=lambda: {kind.name: Tally() for kind in KINDS})
    unexpected: list[Unexpected] = field(default_factory=list)

    def more(self) -> bool:
        return time.monotonic() < self.deadline and self.issued < self.max_requests


MAX_EXAMPLES = 3
"""Unexpected outcomes kept per kind and outcome, as examples for the report."""


def problem_type(body: bytes) -> str | None:
    """The last part of a problem+json ``type`` (``urn:initserve:problem:overloaded`` → ``overloaded``), or None."""
    try:
        found = json.loads(body).get("type")
    except (ValueError, AttributeError):
        return None
    return found.rsplit(":", 1)[-1] if isinstance(found, str) else None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        value = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


async def perform(client: httpx.AsyncClient, request: Request, state: LoadState) -> float:
    """Send ``request``, read its answer, record the outcome; return the seconds to wait before the next one."""
    tally = state.tallies[request.kind]
    chunks: list[bytes] = []
    received = 0
    problem: str | None = None
    wait = 0.0
    start = time.perf_counter()
    try:
        async with client.stream(request.method, request.path, params=request.params, json=request.json_body,
                                 content=request.content, headers=request.headers) as response:
            async for chunk in response.aiter_raw():
                received += len(chunk)
                if request.keep_body or response.status_code != request.ok:
                    chunks.append(chunk)
        elapsed = time.perf_counter() - start
        status = response.status_code
        outcome = str(status)
        body = b"".join(chunks)
        if status == request.ok:
            problem = _length_problem(response, received, request.length)
            if problem is None and request.check is not None:
                try:
                    problem = request.check(response, body)
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                tally.seconds.append(elapsed)
            else:
                outcome = f"{status} wrong body"
        elif status == 503:
            reason = problem_type(body)
            outcome = f"503 {reason}" if reason else "503"
            retry = _retry_after(response)
            if retry is None:
                outcome += " without Retry-After"
            if request.back_pressure and reason == "overloaded" and retry is not None:
                tally.back_off.append(elapsed)
                wait = min(retry, RETRY_CAP)
            else:
                problem = body[:300].decode(errors="replace")
        else:
            problem = body[:300].decode(errors="replace")
    except httpx.TimeoutException as exc:
        outcome, problem = "timeout", f"{type(exc).__name__} after {time.perf_counter() - start:.1f} s"
    except httpx.TransportError as exc:
        cause = exc.__cause__ or exc.__context__
        outcome = f"connection error ({type(exc).__name__})"
        problem = "; ".join(f"{type(e).__name__}: {e}" for e in (exc, cause) if e is not None)
    tally.outcomes[outcome] += 1
    tally.bytes += received
    if problem is not None:
        tally.unexpected += 1
        seen = sum(1 for u in state.unexpected if u.kind == request.kind and u.outcome == outcome)
        if seen < MAX_EXAMPLES:
            state.unexpected.append(Unexpected(request.kind, outcome, request.describe(), problem,
                                               start - state.perf_start, time.perf_counter() - start))
    return wait


async def client_loop(index: int, client: httpx.AsyncClient, options: Options, state: LoadState) -> None:
    """One client: draw a kind, send, read, repeat while time and the request count allow."""
    rng = random.Random(options.seed * 1_000_003 + index)
    weights = [kind.weight for kind in KINDS]
    while state.more():
        state.issued += 1
        state.last_issue = time.monotonic()
        kind = rng.choices(KINDS, weights)[0]
        wait = await perform(client, kind.build(rng, options.sizes), state)
        if wait:
            await asyncio.sleep(wait)


async def drive(url: str, options: Options, log: Callable[[str], None]) -> LoadState:
    """Run the clients until time or the request count is up and every answer is read; return what they got."""
    limits = httpx.Limits(max_connections=options.clients, max_keepalive_connections=options.clients,
                          keepalive_expiry=KEEPALIVE_EXPIRY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=options.timeout) as client:
        start = time.monotonic()
        state = LoadState(start, start + options.duration, options.max_requests)

        async def progress() -> None:
            while True:
                await asyncio.sleep(max(1.0, options.duration / 6))
                done = sum(t.requests for t in state.tallies.values())
                bad = sum(t.unexpected for t in state.tallies.values())
                log(f"  {time.monotonic() - start:5.1f} s: {done:,} answers, {bad} unexpected")

        reporter = asyncio.create_task(progress())
        clients = asyncio.gather(*(client_loop(i, client, options, state) for i in range(options.clients)))
        try:
            await asyncio.wait_for(clients, options.duration + 2 * options.timeout + 10)
        except TimeoutError:
            state.finished = False  # a hang: the remaining requests were cancelled
        state.end = time.monotonic()
        reporter.cancel()
        return state


# ------------------------------------------------------------------------------------------------ after

@dataclass(frozen=True)
class Health:
    """The server after the load."""

    healthz: str
    tensor: str  # "matches" or what differs
    in_flight: float | None  # None: no /metrics
    processes: str  # "unchanged" or the difference
    tracebacks: int
    first_traceback: str

    @property
    def ok(self) -> bool:
        return (self.healthz == "200" and self.tensor == "matches" and self.in_flight in (None, 0.0)
                and self.processes == "unchanged" and self.tracebacks == 0)

    def describe(self) -> str:
        gauge = ("no `/metrics` on this server" if self.in_flight is None
                 else f"`initserve_generations_in_flight` {self.in_flight:g}")
        return (f"`/healthz` {self.healthz}; known tensor (normal 256 × 256 raw, seed {CHECK_SEED}) "
                f"{'bytes match `resolve(...)` (sha256)' if self.tensor == 'matches' else self.tensor}; {gauge}; "
                f"server processes {self.processes}; {self.tracebacks} tracebacks in the server's output")


def _in_flight(client: httpx.Client) -> float | None:
    """The summed ``initserve_generations_in_flight`` samples of /metrics; None without /metrics."""
    response = client.get("/metrics")
    if response.status_code != 200:
        return None
    values = [float(line.split()[-1]) for line in response.text.splitlines()
              if line.startswith("initserve_generations_in_flight") and not line.startswith("#")]
    return sum(values) if values else None


def check_health(server: ServerProcess, pids_before: list[int]) -> Health:
    """Probe the server once the load is over (the gauge gets a few seconds to come back to 0)."""
    shape = (256, 256)
    expected = hashlib.sha256(
        resolve("normal", list(shape), seed=CHECK_SEED).region().astype("<f4").tobytes()).hexdigest()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        try:
            healthz = str(client.get("/healthz").status_code)
        except httpx.HTTPError as exc:
            healthz = f"failed ({type(exc).__name__})"
        try:
            response = client.get("/v1/tensor", params={"method": "normal", "shape": "256,256",
                                                        "seed": str(CHECK_SEED), "format": "raw"})
            found = hashlib.sha256(response.content).hexdigest()
            tensor = ("matches" if response.status_code == 200 and found == expected
                      else f"status {response.status_code}, sha256 {found[:12]}… ≠ {expected[:12]}…")
            deadline = time.monotonic() + 5
            in_flight = _in_flight(client)
            while in_flight and time.monotonic() < deadline:
                time.sleep(0.2)
                in_flight = _in_flight(client)
        except httpx.HTTPError as exc:
            tensor, in_flight = f"failed ({type(exc).__name__})", None
    pids_after = process_tree(server.process.pid) if server.process.poll() is None else []
    if server.process.poll() is not None:
        processes = f"**exited** with {server.process.returncode}"
    elif pids_after == pids_before:
        processes = "unchanged"
    else:
        gone, new = sorted(set(pids_before) - set(pids_after)), sorted(set(pids_after) - set(pids_before))
        processes = f"**changed** (gone {gone}, new {new})"
    output = server.output()
    tracebacks = output.count("Traceback (most recent call last)")
    first = ""
    if tracebacks:
        start = output.index("Traceback (most recent call last)")
        first = "\n".join(output[start:].splitlines()[:40])
    return Health(healthz, tensor, in_flight, processes, tracebacks, first)


# ------------------------------------------------------------------------------------------------ the run

@dataclass
class Run:
    """Everything the report shows."""

    options: Options
    tallies: dict[str, Tally]
    unexpected_examples: list[Unexpected]
    seconds: float  # wall time of the load, first request to last answer
    window: float  # first request to last request sent
    finished: bool  # False: the clients were stopped by the overall time bound (a hang)
    rss_idle: int
    rss_samples: list[int]
    rss_after: int
    processes: list[ProcessInfo]  # at the end: RSS, VmHWM, CPU
    server_cpu: float  # seconds during the load, all processes
    client_cpu: float
    health: Health
    started: dt.datetime
    total_seconds: float

    @property
    def requests(self) -> int:
        return sum(t.requests for t in self.tallies.values())

    @property
    def unexpected(self) -> int:
        return sum(t.unexpected for t in self.tallies.values()) + (0 if self.finished else 1)

    @property
    def back_offs(self) -> int:
        return sum(len(t.back_off) for t in self.tallies.values())

    @property
    def rss_peak(self) -> int:
        return max(self.rss_samples, default=0)

    @property
    def met(self) -> bool:
        return self.unexpected == 0 and self.health.ok


def run(options: Options, log: Callable[[str], None] = print) -> Run:
    """Serve, load, probe; return the measurements."""
    started, clock = dt.datetime.now(dt.UTC), time.perf_counter()
    with ServerProcess(workers=options.workers, env=options.env()) as server:
        root = server.process.pid
        pids_before = process_tree(root)
        before = tree_info(root)
        log(f"  server at {server.url}: {len(pids_before)} processes, {options.workers} workers, "
            f"{_mib(sum(p.rss for p in before))} RSS idle; {options.clients} clients for {options.duration:g} s "
            f"(at most {options.max_requests:,} requests)")
        sampler = RssSampler(root)
        sampler.sample()
        sampler.start()
        cpu = time.process_time()
        try:
            state = asyncio.run(drive(server.url, options, log))
        finally:
            sampler.stop()
        client_cpu = time.process_time() - cpu
        after = tree_info(root)
        health = check_health(server, pids_before)
    server_cpu = sum(p.cpu for p in after) - sum(p.cpu for p in before if p.pid in {a.pid for a in after})
    return Run(options, state.tallies, state.unexpected, state.end - state.start, state.last_issue - state.start,
               state.finished, sum(p.rss for p in before),
               sampler.samples, sum(p.rss for p in after), after, server_cpu, client_cpu, health, started,
               time.perf_counter() - clock)


# ------------------------------------------------------------------------------------------------ report

def _mib(nbytes: float) -> str:
    return f"{nbytes / MIB:,.0f} MiB"


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:,.1f} ms"


def _outcomes(outcomes: Counter[str]) -> str:
    return ", ".join(f"{outcome} × {count:,}" for outcome, count in sorted(outcomes.items()))


def mix(sizes: Sizes) -> str:
    """The mix as a markdown table."""
    total = sum(kind.weight for kind in KINDS)
    lines = ["| kind | share of requests | request | expected |", "|---|---:|---|---|"]
    lines += [f"| {k.name} | {k.weight / total:.0%} | {k.summary(sizes)} | {k.expected} |" for k in KINDS]
    return "\n".join(lines)


def table(result: Run) -> str:
    """One markdown row per kind and a total (also readable as plain text)."""
    lines = ["| kind | requests | req/s | statuses | 503 (back-pressure) | unexpected | p50 | p99 | max | received |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    every = Tally()
    for kind in KINDS:
        t = result.tallies[kind.name]
        every.outcomes.update(t.outcomes)
        every.seconds += t.seconds
        every.back_off += t.back_off
        every.bytes += t.bytes
        every.unexpected += t.unexpected
    for name, t in [*((kind.name, result.tallies[kind.name]) for kind in KINDS), ("**all**", every)]:
        unexpected = f"**{t.unexpected:,}**" if t.unexpected else "0"
        longest = max(t.seconds) if t.seconds else None
        lines.append(f"| {name} | {t.requests:,} | {t.requests / result.seconds:,.1f} | {_outcomes(t.outcomes)} | "
                     f"{len(t.back_off):,} | {unexpected} | {_ms(t.percentile(50))} | {_ms(t.percentile(99))} | "
                     f"{_ms(longest)} | {t.bytes / MIB:,.1f} MiB |")
    return "\n".join(lines)


def memory(result: Run) -> str:
    """The RSS figures."""
    peaks = ", ".join(f"{p.role} {_mib(p.hwm)}" for p in result.processes)
    budget, workers = result.options.memory_budget, result.options.workers
    half = len(result.rss_samples) // 2
    first, second = result.rss_samples[:half], result.rss_samples[half:]
    return (f"Server RSS (sum of `VmRSS` over its {len(result.processes)} processes, sampled every "
            f"{SAMPLE_INTERVAL * 1e3:.0f} ms, {len(result.rss_samples):,} samples): {_mib(result.rss_idle)} idle "
            f"before the load, **peak {_mib(result.rss_peak)}** ({_mib(result.rss_peak - result.rss_idle)} over "
            f"idle; {_mib(max(first, default=0))} in the first half of the samples, {_mib(max(second, default=0))} "
            f"in the second: memory that kept growing would show there), {_mib(result.rss_after)} after it. The memory budget, {_mib(budget)} per worker, bounds the "
            f"estimated working memory of the requests in generation: {_mib(budget * workers)} over "
            f"{workers} worker{'s' if workers > 1 else ''}. Peak RSS per process (`VmHWM` at the end): {peaks}.")


def verdict(result: Run) -> str:
    """Unexpected outcomes, the server's health, the target."""
    hang = "" if result.finished else " The clients did not finish in time and were stopped (counted as 1)."
    return (f"Unexpected outcomes: **{result.unexpected:,}** (target 0).{hang} Health after the load: "
            f"{result.health.describe()}. Target (issue 7): zero unexpected outcomes and a healthy server after: "
            f"{'met' if result.met else '**not met**'}.")


def examples(result: Run) -> str:
    """Up to :data:`MAX_EXAMPLES` unexpected outcomes per kind and outcome, or an empty string."""
    if not result.unexpected_examples:
        return ""
    lines = ["| kind | outcome | sent at | after | request | detail |", "|---|---|---:|---:|---|---|"]
    for u in result.unexpected_examples:
        detail = u.detail.replace("|", "\\|").replace("\n", " ")[:200]
        lines.append(f"| {u.kind} | {u.outcome} | {u.at:.1f} s | {_ms(u.seconds)} | `{u.request[:120]}` | "
                     f"{detail} |")
    return "\n".join(lines)


def summary(result: Run) -> str:
    """Throughput, CPU, memory and the verdict, as plain text paragraphs."""
    cores = os.cpu_count() or 1
    received = sum(t.bytes for t in result.tallies.values())
    return "\n\n".join([
        (f"{result.requests:,} requests in {result.seconds:.1f} s (sent during the first {result.window:.1f} s, "
         f"then the answers in flight were read to their end): {result.requests / result.seconds:,.1f} "
         f"requests/s, {received / MIB / result.seconds:,.0f} MiB/s received; {result.back_offs:,} answers were "
         f"503 overloaded (memory budget full), after each the client slept `Retry-After` capped to {RETRY_CAP:g} s. CPU "
         f"during the load: server {result.server_cpu:.0f} s ({result.server_cpu / result.seconds:.2f} cores), "
         f"this client {result.client_cpu:.0f} s ({result.client_cpu / result.seconds:.2f} cores) of {cores}."),
        memory(result),
        verdict(result),
    ])


def markdown(result: Run, machine: Machine, *, command: str) -> str:
    """The load section of docs/benchmarks.md (see :mod:`bench.sections`)."""
    o = result.options
    parts = [
        "## Load",
        "",
        ("Concurrent clients on a real `initserve serve` process over loopback, each drawing its requests from a "
         "fixed, seeded mix, for a bounded time and number of requests; the answers in flight at the end are read "
         "to their end. One asyncio `httpx.AsyncClient` with a connection per client. A request's latency runs "
         "from sending it to reading its last byte; p50/p99/max are over the right answers (200/206, or the bad "
         "request's own 4xx) whose bodies passed their check (length, safetensors layout, JSON contents, "
         "`Content-Range`). A 503 `overloaded` with `Retry-After` is expected back-pressure for a request that "
         "generates; any other status, a 503 without `Retry-After` or for another reason, a wrong body, a timeout "
         "or a connection error is "
         "unexpected. The server's RSS is the sum over its process tree (supervisor, workers, multiprocessing's "
         "resource tracker) read from /proc. The client runs on the same machine and its CPU is shown. This "
         "section is rewritten by every run of the load benchmark."),
        "",
        f"- Command: `{command}`",
        f"- Date: {result.started.strftime('%Y-%m-%d %H:%M UTC')}; the run took {result.total_seconds:.0f} s",
        f"- Machine: {machine.cpu}, {machine.cores} logical cores (`os.cpu_count()`)",
        f"- Python {machine.python}, numpy {machine.numpy}, httpx {httpx.__version__}",
        f"- initserve algorithm_version {machine.algorithm_version}",
        (f"- Load: {o.clients} clients for {o.duration:g} s, at most {o.max_requests:,} requests, seed {o.seed}, "
         f"httpx timeout {o.timeout:g} s{' (**quick** sizes)' if o.quick else ''}"),
        (f"- Server: {o.workers} workers, "
         + ", ".join(f"`{key}={value}`" for key, value in o.env().items())
         + f" ({_mib(o.memory_budget)} per worker); other settings at their defaults"),
        "",
        mix(o.sizes),
        "",
        table(result),
        "",
        summary(result),
        "",
    ]
    if result.unexpected_examples:
        parts += ["Examples of unexpected outcomes:", "", examples(result), ""]
    return "\n".join(parts)
