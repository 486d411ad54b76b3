"""Observability (issue 7): request ids, ``/metrics``, access logs, ``/readyz`` — in-process and on real servers."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import StreamingResponse

from initserve.api import Settings, create_app
from initserve.api.errors import PROBLEM_MEDIA_TYPE
from initserve.api.observability import (
    ACCESS_LOGGER_NAME,
    LOG_FIELDS,
    format_access,
    rejection_reason,
    sane_request_id,
)
from initserve.core import ALGORITHM_VERSION
from initserve.testing import ServerProcess, live_server

from .cases import SMALL, TestClient

KEY = "observability-test-key-0123456789"
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
TENSOR = "/v1/tensor?method=normal&shape=64,64&seed=3"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient | httpx.Client, **headers: str) -> Samples:
    """Every sample of ``/metrics``, by name and labels (checks the content type on the way)."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every label set that contains ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def requests(samples: Samples, route: str, method: str, status: int) -> float:
    return value(samples, "initserve_requests_total", route=route, method=method, status=str(status))


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == ACCESS_LOGGER_NAME]


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER_NAME):
        yield caplog


def app_with_extras(settings: Settings = SMALL) -> FastAPI:
    """The real app plus routes that fail, show the request id, and stream slowly."""
    app = create_app(settings)

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/test/request-id")
    async def request_id(request: Request) -> dict[str, str]:
        return {"request_id": request.state.request_id}

    return app


# --- request ids ----------------------------------------------------------------------------------


def test_a_request_id_is_generated_and_echoed_on_every_answer():
    with TestClient(app_with_extras(), raise_server_exceptions=False) as client:
        answers = {
            200: client.get(TENSOR),
            404: client.get("/no/such/path"),
            405: client.delete("/v1/tensor"),
            413: client.get("/v1/tensor?method=zeros&shape=1000,1000"),
            422: client.get("/v1/tensor?method=nope&shape=2,2"),
            500: client.get("/test/boom"),
        }
        ids = set()
        for status, response in answers.items():
            assert response.status_code == status
            assert GENERATED_ID.fullmatch(response.headers["x-request-id"]), status
            assert len(response.headers.get_list("x-request-id")) == 1
            ids.add(response.headers["x-request-id"])
        assert len(ids) == len(answers)
        assert answers[500].headers["content-type"] == PROBLEM_MEDIA_TYPE


def test_a_sane_incoming_id_is_kept_and_reaches_the_route():
    with TestClient(app_with_extras()) as client:
        for sane in ("abc", "req-1.2:3_x", "A" * 128):
            response = client.get("/test/request-id", headers={"X-Request-ID": sane})
            assert response.headers["x-request-id"] == sane
            assert response.json() == {"request_id": sane}


@pytest.mark.parametrize("insane", ["", "a" * 129, "has space", "semi;colon", "slash/", "quote\"", "tab\t"])
def test_an_insane_incoming_id_is_replaced(insane):
    assert not sane_request_id(insane)
    with TestClient(app_with_extras()) as client:
        response = client.get("/test/request-id", headers={"X-Request-ID": insane})
        assert GENERATED_ID.fullmatch(response.headers["x-request-id"])
        assert response.json() == {"request_id": response.headers["x-request-id"]}


def test_answers_of_the_access_middleware_carry_the_id():
    with TestClient(create_app(Settings(api_keys=KEY))) as client:
        refused = client.get(TENSOR, headers={"X-Request-ID": "refused-1"})
        assert refused.status_code == 401 and refused.headers["x-request-id"] == "refused-1"
        assert client.get("/readyz").headers["x-request-id"]


# --- access log -----------------------------------------------------------------------------------


def test_json_access_lines_have_every_field(access_log):
    with TestClient(create_app(Settings(api_keys=KEY))) as client:
        headers = {"Authorization": f"Bearer {KEY}", "User-Agent": "obs-test/1", "X-Request-ID": "log-1"}
        answer = client.get(TENSOR, headers=headers)
        client.get("/v1/gain?nonlinearity=relu", headers={"Authorization": "Bearer not-the-key-987"})
    first, refused = access_lines(access_log)
    assert list(first) == list(LOG_FIELDS)
    assert RFC3339_UTC.fullmatch(first["ts"])
    assert first | {"ts": None, "duration_ms": None} == {
        "ts": None, "request_id": "log-1", "method": "GET", "path": TENSOR, "route": "/v1/tensor", "status": 200,
        "bytes": len(answer.content), "duration_ms": None, "client": "testclient", "key_id": first["key_id"],
        "user_agent": "obs-test/1", "disconnected": False,
    }
    assert re.fullmatch(r"[0-9a-f]{8}", first["key_id"]) and first["duration_ms"] > 0
    assert (refused["status"], refused["key_id"], refused["route"]) == (401, None, "/v1/gain")
    everything = "\n".join(record.getMessage() for record in access_log.records) + repr(
        [record.__dict__ for record in access_log.records])
    assert KEY not in everything and "not-the-key-987" not in everything


def test_long_targets_are_cut(access_log):
    with TestClient(create_app(SMALL)) as client:
        client.get("/v1/gain", params={"nonlinearity": "x" * 2000})
    (line,) = access_lines(access_log)
    assert line["path"].startswith("/v1/gain?nonlinearity=xxx") and len(line["path"]) == 513
    assert line["status"] == 422


def test_text_format_is_one_escaped_line(caplog):
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER_NAME), \
            TestClient(create_app(Settings(log_format="text"))) as client:
        client.get("/healthz", headers={"X-Request-ID": "t-1", "User-Agent": 'evil"\x01 ua'})
    (record,) = [record for record in caplog.records if record.name == ACCESS_LOGGER_NAME]
    line = record.getMessage()
    assert re.fullmatch(r'\S+Z testclient "GET /healthz" 200 \d+B [\d.]+ms id=t-1 key=- ua="evil\\"\\x01 ua"', line), \
        line
    assert "\n" not in line


def test_text_format_escapes_what_a_client_controls():
    fields = {"ts": "T", "request_id": "r", "method": "GET", "path": "/a\nb", "route": "other", "status": 404,
              "bytes": 1, "duration_ms": 1.0, "client": None, "key_id": None, "user_agent": None,
              "disconnected": True}
    assert format_access(fields, "text") == 'T - "GET /a\\nb" 404 1B 1.0ms id=r key=- ua="-" disconnected'
    assert json.loads(format_access(fields, "json")) == fields


def test_log_format_off_logs_nothing(access_log):
    with TestClient(create_app(Settings(log_format="off"))) as client:
        assert client.get("/healthz").status_code == 200
    assert access_lines(access_log) == []


# --- metrics --------------------------------------------------------------------------------------


def test_counters_move_by_the_right_amounts():
    with TestClient(create_app(SMALL)) as client:
        before = scrape(client)
        ok = client.get(TENSOR)
        too_large = client.get("/v1/tensor?method=zeros&shape=1000,1000")
        invalid = client.post("/v1/tensor", json={"method": "normal", "shape": [2, 2], "stddev": 1})
        head = client.head(TENSOR)
        ranged = client.get(TENSOR, headers={"Range": "bytes=0-99"})
        model = client.post("/v1/model?format=safetensors",
                            json={"layers": [{"type": "linear", "in_features": 4, "out_features": 3}]})
        after = scrape(client)
    assert [r.status_code for r in (ok, too_large, invalid, head, ranged, model)] == [200, 413, 422, 200, 206, 200]

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("initserve_requests_total", route="/v1/tensor", method="GET", status="200") == 1
    assert delta("initserve_requests_total", route="/v1/tensor", method="GET", status="413") == 1
    assert delta("initserve_requests_total", route="/v1/tensor", method="POST", status="422") == 1
    assert delta("initserve_requests_total", route="/v1/tensor", method="HEAD", status="200") == 1
    assert delta("initserve_requests_total", route="/v1/tensor", method="GET", status="206") == 1
    assert delta("initserve_rejections_total", reason="too_large") == 1
    assert delta("initserve_rejections_total", reason="invalid") == 1
    assert delta("initserve_request_duration_seconds_count", route="/v1/tensor", method="GET") == 3
    assert delta("initserve_request_duration_seconds_bucket", route="/v1/tensor", method="GET", le="+Inf") == 3
    assert delta("initserve_request_duration_seconds_sum", route="/v1/tensor", method="GET") > 0
    # only 2xx bodies of the generation routes: the whole answer, the range, the model; no HEAD, no errors
    assert delta("initserve_generated_bytes_total", route="/v1/tensor") == len(ok.content) + 100
    assert delta("initserve_generated_bytes_total", route="/v1/model") == len(model.content)


def test_refusals_of_other_modules_are_not_counted_twice():
    with TestClient(create_app(Settings(api_keys=KEY))) as client:
        auth = {"Authorization": f"Bearer {KEY}"}
        before = scrape(client, **auth)
        assert client.get(TENSOR).status_code == 401
        after = scrape(client, **auth)
    for reason, moved in (("unauthorized", 1), ("invalid", 0), ("too_large", 0)):
        assert value(after, "initserve_rejections_total", reason=reason) - \
            value(before, "initserve_rejections_total", reason=reason) == moved, reason
    assert requests(after, "/v1/tensor", "GET", 401) - requests(before, "/v1/tensor", "GET", 401) == 1


def test_labels_are_bounded_templates():
    app = create_app(SMALL)
    with TestClient(app) as client:
        client.get("/v1/tensor/../secret/123")
        client.get("/no/such/path/4711?x=1")
        client.request("BREW", "/v1/gain")
        client.get("/v1/fans?shape=8,4")
        samples = scrape(client)
    routes = {dict(labels).get("route") for (name, labels) in samples if name.startswith("initserve_")} - {None}
    templates = {getattr(route, "path", None) for route in app.routes} | {
        "/v1/tensor", "/v1/model", "/v1/stats", "/v1/stats/propagation", "/v1/methods", "/v1/gain", "/v1/fans",
        "/healthz", "/readyz", "/metrics", "other", "/test/boom", "/test/request-id"}  # (the registry is global)
    assert routes <= templates and {"other", "/v1/fans"} <= routes
    methods = {dict(labels).get("method") for (name, labels) in samples if name == "initserve_requests_total"}
    assert "BREW" not in methods and "other" in methods
    assert requests(samples, "/v1/gain", "other", 405) >= 1


def test_metrics_is_not_in_the_openapi_document_but_readyz_is():
    paths = create_app(SMALL).openapi()["paths"]
    assert "/metrics" not in paths and "/readyz" in paths and "503" in paths["/readyz"]["get"]["responses"]


# --- readiness ------------------------------------------------------------------------------------


def test_readyz_is_ready_then_503_once_shutting_down():
    app = create_app(SMALL)
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "algorithm_version": ALGORITHM_VERSION}
        assert client.get("/healthz").status_code == 200
    assert app.state.shutting_down is True  # the lifespan's shutdown went through the wrapper
    stopping = TestClient(app).get("/readyz")
    assert stopping.status_code == 503 and stopping.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert stopping.json()["status"] == 503 and stopping.headers["x-request-id"]
    assert TestClient(app).get("/healthz").status_code == 200  # still alive
    with TestClient(app) as client:  # started again (test clients do that): ready again
        assert client.get("/readyz").status_code == 200


def test_probes_need_no_key():
    with TestClient(create_app(Settings(api_keys=KEY, rate_limit=0.001, rate_burst=1))) as client:
        for _ in range(3):
            assert client.get("/readyz").status_code == 200
            assert client.get("/healthz").status_code == 200


def test_rejection_reasons():
    assert rejection_reason(413) == "too_large"
    assert [rejection_reason(s) for s in (400, 404, 405, 415, 416, 422)] == ["invalid"] * 6
    assert [rejection_reason(s) for s in (200, 206, 304, 401, 412, 429, 500, 503)] == [None] * 8


# --- streaming, at the ASGI level -----------------------------------------------------------------


def _streaming_app(events: list[str], chunks: int) -> FastAPI:
    app = create_app(SMALL)

    @app.get("/v1/model")  # stands in for a long generation (GET is free on that path)
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for index in range(chunks):
                events.append(f"made {index}")
                yield b"x" * 10
                await asyncio.sleep(0.01)

        return StreamingResponse(body(), media_type="application/octet-stream")

    return app


def _scope(path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": [(b"host", b"t")], "client": ("127.0.0.1", 1), "server": ("t", 80)}


def test_streamed_chunks_pass_through_one_by_one(access_log):
    events: list[str] = []
    app = _streaming_app(events, chunks=3)

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(10)  # the client stays
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            events.append(f"start {dict(message['headers']).get(b'x-request-id') is not None}")
        elif message.get("body"):
            events.append("sent")

    asyncio.run(app(_scope("/v1/model"), receive, send))
    assert events == ["start True", "made 0", "sent", "made 1", "sent", "made 2", "sent"]
    (line,) = access_lines(access_log)
    assert (line["status"], line["bytes"], line["disconnected"]) == (200, 30, False)


def test_a_client_that_leaves_is_logged_as_disconnected(access_log):
    events: list[str] = []
    app = _streaming_app(events, chunks=1000)

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    asyncio.run(app(_scope("/v1/model"), receive, send))
    (line,) = access_lines(access_log)
    assert line["disconnected"] is True and line["status"] in (200, 499)
    assert 0 <= line["bytes"] < 10_000 and len(events) < 1000


# --- real servers ---------------------------------------------------------------------------------


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for raw in text.splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def _wait_for_line(server: ServerProcess, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [line for line in _json_lines(server.output()) if line.get("request_id") == request_id]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no access line for {request_id}:\n{server.output()}")


def test_live_server_writes_one_json_line_per_request_and_never_the_key():
    with ServerProcess(env={"INITSERVE_API_KEYS": KEY}) as server:
        answer = httpx.get(f"{server.url}{TENSOR}", headers={"Authorization": f"Bearer {KEY}",
                                                              "X-Request-ID": "live-1"})
        refused = httpx.get(f"{server.url}/v1/methods", headers={"Authorization": "Bearer wrong-key-42",
                                                                  "X-Request-ID": "live-2"})
        ready = httpx.get(f"{server.url}/readyz")
        assert (answer.status_code, refused.status_code, ready.status_code) == (200, 401, 200)
        assert answer.headers["x-request-id"] == "live-1"
        line = _wait_for_line(server, "live-1")
        assert (line["status"], line["bytes"], line["route"], line["client"]) == (200, len(answer.content),
                                                                                  "/v1/tensor", "127.0.0.1")
        assert re.fullmatch(r"[0-9a-f]{8}", line["key_id"]) and RFC3339_UTC.fullmatch(line["ts"])
        assert _wait_for_line(server, "live-2")["status"] == 401
        _wait_for_line(server, ready.headers["x-request-id"])
        output = server.output()
    assert KEY not in output and "wrong-key-42" not in output
    assert 'HTTP/1.1" 200' not in output  # uvicorn's own access log is off: one line per request
    assert "Uvicorn running on" in output or "Application startup complete" in output  # its error log stays


def test_two_workers_are_summed_in_one_scrape():
    with live_server(workers=2) as url:
        for _ in range(20):  # a new connection each: the workers share them
            assert httpx.get(f"{url}/v1/gain?nonlinearity=tanh").status_code == 200
        for _ in range(4):
            response = httpx.get(f"{url}/metrics")
            samples = {(s.name, frozenset(s.labels.items())): s.value
                       for family in text_string_to_metric_families(response.text) for s in family.samples}
            assert total(samples, "initserve_requests_total", route="/v1/gain") >= 20
            assert total(samples, "initserve_request_duration_seconds_count", route="/v1/gain") >= 20
            # summed from every worker's files by MultiProcessCollector: the per-process collectors are absent
            assert "process_cpu_seconds_total" not in response.text and "python_gc" not in response.text
