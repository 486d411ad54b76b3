"""Admission control: the memory budget (503 + Retry-After when full, 413 beyond it, before any work), the
generation time limit (503 before the answer, a cut stream after), client disconnects, ``max_layers``,
and the grant given back exactly once however a request ends.

Streams are driven at the ASGI level the way uvicorn's h11 server does it (ASGI 2.3: Starlette listens
for ``http.disconnect`` while it streams), so a disconnect, a stalled or a slow client is exact and fast;
``tests/api/test_shutdown.py`` does the same against a real server.
"""

from __future__ import annotations

import gc
import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from safetensors.numpy import save as save_safetensors
from starlette.responses import Response

from initserve.api import Settings, create_app, model_serving, stats_serving
from initserve.api.admission import MemoryBudget, admit
from initserve.api.errors import Overloaded, TooLarge
from initserve.api.estimates import REQUEST_BYTES, SEND_BYTES, propagation_estimate, stats_estimate, tensor_estimate
from initserve.core import Tensor, resolve
from initserve.core.stats import propagation, tensor_statistics
from initserve.formats import encode

from .cases import TestClient
from .model_cases import assert_model_problem, linear

MiB = 1 << 20
MODEL = {"layers": [linear(10, 16), linear(16, 4)]}
CHECKPOINT = save_safetensors({"0.weight": np.ones((16, 10), np.float32)})

Call = tuple[str, str, dict[str, Any]]
CALLS: dict[str, Call] = {
    "tensor GET": ("GET", "/v1/tensor", {"params": {"method": "normal", "shape": "64,64"}}),
    "tensor json": ("POST", "/v1/tensor?format=json", {"json": {"method": "uniform", "shape": [8, 8]}}),
    "tensor orthogonal": ("POST", "/v1/tensor", {"json": {"method": "orthogonal", "shape": [16, 8]}}),
    "model": ("POST", "/v1/model", {"json": MODEL}),
    "model manifest": ("POST", "/v1/model?format=manifest", {"json": MODEL}),
    "model checkpoint": ("POST", "/v1/model", {"data": {"model": json.dumps(MODEL)},
                                               "files": {"checkpoint": ("ck.safetensors", CHECKPOINT)}}),
    "stats": ("POST", "/v1/stats", {"json": {"method": "normal", "shape": [32, 32]}}),
    "stats model": ("POST", "/v1/stats", {"json": MODEL}),
    "propagation": ("POST", "/v1/stats/propagation", {"json": {"layers": [linear(16, 16)] * 3, "batch_size": 8}}),
}


def call(client: TestClient, name: str) -> httpx.Response:
    verb, path, arguments = CALLS[name]
    return client.request(verb, path, **arguments)


def rejections(reason: str) -> float:
    return REGISTRY.get_sample_value("initserve_rejections_total", {"reason": reason}) or 0.0


def in_flight() -> float:
    return REGISTRY.get_sample_value("initserve_generations_in_flight") or 0.0


def assert_idle(app: FastAPI) -> None:
    budget: MemoryBudget = app.state.budget
    assert (budget.used, budget.in_flight) == (0, 0)


@pytest.fixture
def refuse_work(no_generation: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """``no_generation``, the statistics' sampling and every whole-matrix build too."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("work was done before admission")

    monkeypatch.setattr(Tensor, "take", refuse)
    monkeypatch.setattr(Tensor, "build", refuse)


# --- the budget -----------------------------------------------------------------------------------------


def test_grants_are_exact_thread_safe_and_released_once() -> None:
    budget = MemoryBudget(1000)
    first = budget.acquire(600, 1)
    with pytest.raises(Overloaded):
        budget.acquire(401, 1)
    second = budget.acquire(400, 1)
    assert (budget.used, budget.in_flight) == (1000, 2)
    first.release()
    first.release()
    assert (budget.used, budget.in_flight) == (400, 1)
    second.release()
    with pytest.raises(TooLarge):
        budget.acquire(1001, 1)

    refused = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for size in rng.integers(1, 400, 200).tolist():
            try:
                grant = budget.acquire(size, 1)
            except Overloaded:
                refused.append(size)
                continue
            assert budget.used <= budget.capacity
            time.sleep(0.0005)  # hold it while the others ask
            grant.release()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (budget.used, budget.in_flight) == (0, 0)
    assert refused  # 8 threads of up to 399 bytes did contend for 1000


@pytest.mark.parametrize("name", CALLS)
def test_a_full_budget_is_503_with_retry_after_before_any_work(refuse_work: None, name: str) -> None:
    app = create_app(Settings(retry_after=7))
    hold = app.state.budget.acquire(app.state.budget.capacity - REQUEST_BYTES, 1)
    before = rejections("overloaded")
    with TestClient(app) as client:
        response = call(client, name)
    problem = assert_model_problem(response, 503, "memory_budget")
    assert problem["type"] == "urn:initserve:problem:overloaded"
    assert response.headers["retry-after"] == "7"
    assert isinstance(problem["value"], int) and problem["value"] > REQUEST_BYTES
    assert "INITSERVE_MEMORY_BUDGET" in problem["detail"] and "retry in 7 s" in problem["detail"]
    assert rejections("overloaded") == before + 1
    hold.release()
    assert_idle(app)


@pytest.mark.parametrize("name", CALLS)
def test_over_the_whole_budget_is_413_not_503(refuse_work: None, name: str) -> None:
    app = create_app(Settings(memory_budget=REQUEST_BYTES))
    with TestClient(app) as client:
        problem = assert_model_problem(call(client, name), 413, "memory_budget")
    assert problem["value"] > REQUEST_BYTES and "INITSERVE_MEMORY_BUDGET" in problem["detail"]
    assert_idle(app)


@pytest.mark.parametrize("name", CALLS)
def test_every_answer_gives_its_grant_back(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    granted: list[int] = []
    acquire = MemoryBudget.acquire

    def spy(budget: MemoryBudget, nbytes: int, retry_after: int) -> Any:
        granted.append(nbytes)
        return acquire(budget, nbytes, retry_after)

    monkeypatch.setattr(MemoryBudget, "acquire", spy)
    app = create_app(Settings())
    gauge = in_flight()
    with TestClient(app) as client:
        response = call(client, name)
        assert response.status_code == 200, response.text
        assert_idle(app)
        if response.headers.get("etag") and CALLS[name][0] == "GET":  # a 304 and a HEAD are admitted, then done
            assert client.get(CALLS[name][1], params=CALLS[name][2]["params"],
                              headers={"if-none-match": response.headers["etag"]}).status_code == 304
            assert client.head(CALLS[name][1], params=CALLS[name][2]["params"]).status_code == 200
            assert_idle(app)
    assert granted and all(nbytes > REQUEST_BYTES for nbytes in granted[:1])
    assert in_flight() == gauge


def test_a_zero_budget_admits_everything() -> None:
    app = create_app(Settings(memory_budget=0))
    with TestClient(app) as client:
        assert client.get("/v1/tensor", params={"method": "normal", "shape": "1000,1000"}).status_code == 200
    assert_idle(app)


def test_errors_after_admission_give_the_grant_back(client: TestClient) -> None:
    """A format the tensor cannot take is found while encoding, after admission."""
    response = client.post("/v1/tensor", json={"method": "normal", "shape": [4], "dtype": "bfloat16"})
    assert_model_problem(response, 422, "format")
    assert_idle(client.app)  # type: ignore[arg-type]


def test_an_answer_never_sent_gives_its_grant_back() -> None:
    budget = MemoryBudget(1 << 20)
    request: Any = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(budget=budget)))
    with admit(request, Settings(), 1000) as admission:
        response = admission.streaming(iter([b"x"]))
    assert budget.used == 1000
    del response
    gc.collect()
    assert (budget.used, budget.in_flight) == (0, 0)


def test_a_body_of_one_chunk_is_answered_whole_and_gives_its_grant_back_at_once() -> None:
    budget = MemoryBudget(1 << 20)
    request: Any = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(budget=budget)))
    closed: list[bool] = []

    def chunks() -> Iterator[bytes]:
        try:
            yield b"abc"
            yield b"never asked for"
        finally:
            closed.append(True)

    with admit(request, Settings(), 1000) as admission:
        response = admission.streaming(chunks(), headers={"Content-Length": "3"})
    assert type(response) is Response and response.body == b"abc" and closed == [True]
    assert (budget.used, budget.in_flight) == (0, 0)


# --- streams driven like uvicorn ------------------------------------------------------------------------


@dataclass
class Exchange:
    """What a client saw of one streamed answer."""

    status: int = 0
    chunks: list[bytes] = field(default_factory=list)
    complete: bool = False
    seconds: float = 0.0


def exchange(app: FastAPI, query: str, *, disconnect_after: int | None = None, stall_after: int | None = None,
             read_delay: float = 0.0, after_read: Callable[[], None] | None = None) -> Exchange:
    """GET /v1/tensor?``query`` through ``app`` as uvicorn would (ASGI 2.3); the client goes away after
    ``disconnect_after`` body chunks, stops reading after ``stall_after``, or takes ``read_delay`` s per chunk
    (then calls ``after_read``)."""
    seen = Exchange()
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/v1/tensor", "raw_path": b"/v1/tensor", "root_path": "",
             "query_string": query.encode(), "headers": [(b"host", b"test")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80), "state": {}}

    async def main() -> None:
        gone = anyio.Event()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen.status = message["status"]
                return
            if not message.get("more_body", False):
                seen.complete = True
            seen.chunks.append(message.get("body", b""))
            count = len(seen.chunks)
            if count == disconnect_after:
                gone.set()
            if count == stall_after:
                await anyio.sleep_forever()
            await anyio.sleep(read_delay)
            if after_read is not None:
                after_read()

        started = time.perf_counter()
        with anyio.fail_after(20):
            await app(scope, receive, send)
        seen.seconds = time.perf_counter() - started

    anyio.run(main)
    return seen


@pytest.fixture
def generation(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Counts the chunks ``Tensor.iter_flat`` produced, and whether each of its generators was closed."""
    record = SimpleNamespace(chunks=0, started=0, closed=0)
    iter_flat = Tensor.iter_flat

    def counted(self: Tensor, *args: Any, **kwargs: Any) -> Iterator[np.ndarray]:
        record.started += 1
        try:
            for chunk in iter_flat(self, *args, **kwargs):
                record.chunks += 1
                yield chunk
        finally:
            record.closed += 1

    monkeypatch.setattr(Tensor, "iter_flat", counted)
    return record


HUGE = f"method=normal&shape={1 << 30}&format=raw"  # 4 GiB, 1024 chunks: never meant to finish


def test_a_client_that_goes_away_stops_the_generation(generation: SimpleNamespace) -> None:
    app = create_app(Settings(max_elements=1 << 31))
    before, gauge = rejections("disconnected"), in_flight()
    seen = exchange(app, HUGE, disconnect_after=3)
    assert seen.status == 200 and not seen.complete and len(seen.chunks) == 3
    assert generation.chunks <= 4  # the chunk in progress when the disconnect was seen, at most
    assert generation.closed == generation.started == 1  # the generator's finally ran
    assert_idle(app)
    assert rejections("disconnected") == before + 1 and in_flight() == gauge


def test_generation_past_the_time_limit_cuts_the_stream(generation: SimpleNamespace) -> None:
    app = create_app(Settings(max_elements=1 << 31, request_timeout=0.2))
    before = rejections("timeout")
    seen = exchange(app, HUGE)
    assert seen.status == 200 and not seen.complete  # headers were out: the body stops short
    assert 0 < generation.chunks < 1024 and seen.seconds < 5
    assert generation.closed == generation.started == 1
    assert_idle(app)
    assert rejections("timeout") == before + 1


def test_a_stalled_client_is_cut_after_the_time_limit(generation: SimpleNamespace) -> None:
    app = create_app(Settings(max_elements=1 << 31, request_timeout=0.3))
    before = rejections("timeout")
    seen = exchange(app, HUGE, stall_after=2)
    assert not seen.complete and 0.3 <= seen.seconds < 5
    assert generation.chunks <= 4 and generation.closed == 1
    assert_idle(app)
    assert rejections("timeout") == before + 1


def test_a_slow_reader_is_not_cut() -> None:
    """Waiting for the client is not generation time: 4 chunks read in 4 × 0.15 s > the 0.3 s limit."""
    app = create_app(Settings(request_timeout=0.3))
    seen = exchange(app, f"method=uniform&shape={1 << 22}&dtype=float16&format=raw", read_delay=0.15)
    assert seen.complete and sum(map(len, seen.chunks)) == 2 << 22 and seen.seconds > 0.3
    assert_idle(app)


def test_the_next_chunk_is_generated_while_one_is_sent(generation: SimpleNamespace) -> None:
    """Generation runs one chunk ahead of the client, no further: while the client takes its time over chunk k,
    chunk k + 1 is generated (generating and sending overlap), and chunk k + 2 is not (memory stays bounded)."""
    app = create_app(Settings())
    produced: list[int] = []
    seen = exchange(app, f"method=normal&shape={1 << 22}&format=raw", read_delay=0.25,
                    after_read=lambda: produced.append(generation.chunks))
    assert seen.complete and [len(chunk) for chunk in seen.chunks] == [4 << 20] * 4 + [0]
    assert produced == [2, 3, 4, 4, 4]
    assert generation.closed == generation.started == 1
    assert_idle(app)


def test_a_failure_mid_stream_gives_the_grant_back(monkeypatch: pytest.MonkeyPatch) -> None:
    iter_flat = Tensor.iter_flat

    def failing(self: Tensor, *args: Any, **kwargs: Any) -> Iterator[np.ndarray]:
        chunks = iter_flat(self, *args, **kwargs)
        yield next(chunks)
        raise RuntimeError("boom")

    monkeypatch.setattr(Tensor, "iter_flat", failing)
    app = create_app(Settings())
    with pytest.raises(RuntimeError, match="boom"):
        exchange(app, f"method=normal&shape={1 << 22}&format=raw")
    assert_idle(app)


# --- time limit before the answer -----------------------------------------------------------------------


@pytest.mark.parametrize("path, body", [
    ("/v1/tensor", {"method": "orthogonal", "shape": [2048, 2048]}),  # ~1 s of reflections, stopped in a block
    ("/v1/tensor?format=json", {"method": "normal", "shape": [1 << 22]}),
    ("/v1/stats", {"method": "orthogonal", "shape": [2048, 2048]}),
    ("/v1/stats/propagation", {"layers": [linear(512, 512)] * 40, "batch_size": 512}),
], ids=["orthogonal", "json", "stats", "propagation"])
def test_generation_past_the_time_limit_before_the_answer_is_503(path: str, body: dict[str, Any]) -> None:
    app = create_app(Settings(request_timeout=0.05, retry_after=3))
    before = rejections("timeout")
    started = time.perf_counter()
    with TestClient(app) as client:
        response = client.post(path, json=body)
    assert time.perf_counter() - started < 1.5
    problem = assert_model_problem(response, 503, "request_timeout", 0.05)
    assert problem["type"] == "urn:initserve:problem:timeout" and "INITSERVE_REQUEST_TIMEOUT" in problem["detail"]
    assert response.headers["retry-after"] == "3"
    assert rejections("timeout") == before + 1
    assert_idle(app)


# --- max_layers and the other limits, before any work ---------------------------------------------------


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model was resolved before the layer count was checked")

    for module in (model_serving, stats_serving, propagation):
        monkeypatch.setattr(module, "resolve_model", refuse)


@pytest.mark.parametrize("path", ["/v1/model", "/v1/stats", "/v1/stats/propagation"])
def test_more_than_max_layers_is_413_before_the_model_is_resolved(no_model: None, path: str) -> None:
    with TestClient(create_app(Settings(max_layers=2))) as client:
        problem = assert_model_problem(client.post(path, json={"layers": [linear(4, 4)] * 3}), 413, "layers", 3)
    assert "INITSERVE_MAX_LAYERS" in problem["detail"]


@pytest.mark.parametrize("path", ["/v1/model", "/v1/stats", "/v1/stats/propagation"])
def test_max_layers_is_inclusive(path: str) -> None:
    with TestClient(create_app(Settings(max_layers=2))) as client:
        assert client.post(path, json={"layers": [linear(4, 4)] * 2}).status_code == 200


def test_a_chunked_checkpoint_upload_over_the_limit_is_413(refuse_work: None) -> None:
    """No Content-Length to refuse up front: the stream is counted and cut."""
    upload = httpx.Request("POST", "http://test/v1/model", data={"model": json.dumps(MODEL)},
                           files={"checkpoint": ("ck.safetensors", CHECKPOINT)})
    body = upload.read()
    with TestClient(create_app(Settings(max_upload_bytes=len(body) - 1))) as client:
        response = client.post("/v1/model", content=iter([body[:100], body[100:]]),
                               headers={"content-type": upload.headers["content-type"]})
    assert_model_problem(response, 413, "body")


# --- the estimates --------------------------------------------------------------------------------------


def peak(work: Callable[[], object]) -> int:
    """Peak bytes traced (numpy's buffers included) while ``work`` runs."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def streamed(spec: dict[str, Any], fmt: str) -> Callable[[], object]:
    return lambda: [len(chunk) for chunk in encode(resolve(**spec), fmt).chunks]  # type: ignore[arg-type]


ESTIMATED: dict[str, tuple[Callable[[], int], Callable[[], object]]] = {
    "float32 keras": (lambda: tensor_estimate(resolve("normal", [3, 3, 512, 512], layout="keras"), "raw"),
                      streamed({"method": "normal", "shape": [3, 3, 512, 512], "layout": "keras"}, "raw")),
    "json float64": (lambda: tensor_estimate(resolve("normal", [1 << 20], dtype="float64"), "json"),
                     streamed({"method": "normal", "shape": [1 << 20], "dtype": "float64"}, "json")),
    "orthogonal": (lambda: tensor_estimate(resolve("orthogonal", [256, 64]), "npy"),
                   streamed({"method": "orthogonal", "shape": [256, 64]}, "npy")),
    "sparse": (lambda: tensor_estimate(resolve("sparse", [512, 512], sparsity=0.1), "npy"),
               streamed({"method": "sparse", "shape": [512, 512], "sparsity": 0.1}, "npy")),
    "stats": (lambda: stats_estimate([resolve("normal", [1 << 21])], 1 << 20),
              lambda: tensor_statistics(resolve("normal", [1 << 21]))),
    "stats eye": (lambda: stats_estimate([resolve("eye", [1024, 1024])], 1 << 20),
                  lambda: tensor_statistics(resolve("eye", [1024, 1024]))),
}


@pytest.mark.parametrize("name", [*ESTIMATED, "propagation", "conv propagation"])
def test_estimates_bound_the_measured_peak(name: str) -> None:
    """Each estimate covers the traced peak, without being more than 3 times it (+ the fixed parts)."""
    if name in ESTIMATED:
        estimate, work = ESTIMATED[name]
        estimated = estimate()
    else:
        conv = name.startswith("conv")
        layers = [{"type": "conv2d", "in_channels": 8, "out_channels": 8, "kernel_size": 3}] * 3 if conv else \
            [linear(256, 256, nonlinearity="tanh")] * 4
        found: list[int] = []

        def work() -> object:
            return propagation.propagate(layers, batch_size=16 if conv else 128, input_shape=[8, 16, 16] if conv
                                         else None, check=lambda model, batch: found.append(
                                             propagation_estimate(model, batch)))

        work()
        estimated = found[0]
    measured = peak(work)
    assert measured <= estimated
    assert estimated - REQUEST_BYTES - SEND_BYTES <= 3 * measured
