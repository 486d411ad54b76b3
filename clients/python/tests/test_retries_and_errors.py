"""Retries (connection errors, 429, 503 with Retry-After) and the error hierarchy, through httpx.MockTransport."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from initserve_client import AsyncClient, Client, _retry
from initserve_client.errors import (
    APIError,
    BadRequest,
    InitserveError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    ServerError,
    TooLarge,
    TransportError,
    Unauthorized,
    Unavailable,
)

MakeClient = Callable[..., Client]
RAW_HEADERS = {"x-initserve-shape": "2", "x-initserve-dtype": "float32"}
RAW_BODY = np.array([1.5, -2.0], dtype="<f4").tobytes()


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=RAW_HEADERS, content=RAW_BODY)


def problem(status: int, field: str = "std", value: Any = -1.0, detail: str = "std=-1.0: must be >= 0",
            headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    body = {"type": f"urn:initserve:problem:s{status}", "title": "Problem", "status": status, "detail": detail,
            "field": field, "value": value, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json", **(headers or {})})


class Script:
    """Answers requests in turn from a list of responses or exceptions; records the requests."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]) -> None:
        self.answers: Iterator[Any] = iter(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer


def test_503_then_200_honours_retry_after(mock_client: MakeClient, sleeps: list[float]) -> None:
    script = Script(httpx.Response(503, headers={"retry-after": "7"}), ok)
    got = mock_client(script).tensor("normal", [2])
    assert got.tolist() == [1.5, -2.0]
    assert sleeps == [7.0] and len(script.requests) == 2


def test_429_with_an_http_date(mock_client: MakeClient, sleeps: list[float]) -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=12), usegmt=True)
    script = Script(httpx.Response(429, headers={"retry-after": when}, text="slow down"), ok)
    mock_client(script).tensor("normal", [2])
    assert len(sleeps) == 1 and 10.0 <= sleeps[0] <= 12.0


def test_exponential_backoff_capped(mock_client: MakeClient, sleeps: list[float]) -> None:
    script = Script(*[httpx.Response(503)] * 4, ok)
    mock_client(script, retries=4, backoff=10.0).tensor("normal", [2])
    assert sleeps == [10.0, 20.0, 30.0, 30.0]


def test_retries_exhausted_raise_the_last_answer(mock_client: MakeClient, sleeps: list[float]) -> None:
    script = Script(*[problem(503, detail="overloaded", headers={"retry-after": "1"})] * 3)
    with pytest.raises(Unavailable) as error:
        mock_client(script, retries=2).tensor("normal", [2])
    assert error.value.status == 503 and error.value.retry_after == 1.0 and str(error.value) == "overloaded"
    assert sleeps == [1.0, 1.0] and len(script.requests) == 3


def test_a_retry_after_too_long_is_not_waited_for(mock_client: MakeClient, sleeps: list[float]) -> None:
    script = Script(httpx.Response(429, headers={"retry-after": "3600"}))
    with pytest.raises(RateLimited) as error:
        mock_client(script).tensor("normal", [2])
    assert error.value.retry_after == 3600.0 and sleeps == [] and len(script.requests) == 1


def test_connection_errors_are_retried_then_raised(mock_client: MakeClient, sleeps: list[float]) -> None:
    failure = httpx.ConnectError("connection refused")
    script = Script(failure, failure, failure)
    with pytest.raises(TransportError) as error:
        mock_client(script, retries=2, backoff=0.25).tensor("normal", [2])
    assert isinstance(error.value.__cause__, httpx.ConnectError) and "after 3 attempts" in str(error.value)
    assert sleeps == [0.25, 0.5] and len(script.requests) == 3
    recovered = Script(httpx.ReadTimeout("slow"), ok)
    assert mock_client(recovered).tensor("normal", [2]).tolist() == [1.5, -2.0]


def test_a_wrong_url_scheme_is_not_retried(sleeps: list[float]) -> None:
    with Client("127.0.0.1:8000") as client, pytest.raises(TransportError):
        client.methods()
    assert sleeps == []


@pytest.mark.parametrize(("status", "cls"), [(400, BadRequest), (401, Unauthorized), (404, NotFound),
                                             (405, MethodNotAllowed), (413, TooLarge), (422, InvalidRequest),
                                             (500, ServerError), (502, ServerError), (504, ServerError),
                                             (409, APIError)])
def test_other_statuses_are_never_retried(mock_client: MakeClient, sleeps: list[float], status: int,
                                          cls: type[APIError]) -> None:
    errors = [{"field": "std", "value": -1.0, "message": "must be >= 0"}]
    script = Script(problem(status, errors=errors, headers={"retry-after": "1"}))
    with pytest.raises(cls) as raised:
        mock_client(script).tensor("normal", [2])
    error = raised.value
    assert type(error) is cls and isinstance(error, InitserveError)
    assert (error.status, error.field, error.value, error.detail) == (status, "std", -1.0, "std=-1.0: must be >= 0")
    assert error.type == f"urn:initserve:problem:s{status}" and error.title == "Problem" and error.errors == errors
    assert str(error) == "std=-1.0: must be >= 0"
    assert sleeps == [] and len(script.requests) == 1


def test_422_and_413_fields(mock_client: MakeClient) -> None:
    script = Script(problem(422, field="stddev", value=0.1, detail="stddev=0.1: unknown field for method 'normal'"),
                    problem(413, field="shape", value=[100001], detail="shape=[100001]: too many elements"))
    client = mock_client(script)
    with pytest.raises(InvalidRequest) as invalid:
        client.tensor("normal", [2])
    assert (invalid.value.field, invalid.value.value) == ("stddev", 0.1)
    with pytest.raises(TooLarge) as large:
        client.tensor("normal", [2])
    assert (large.value.field, large.value.value) == ("shape", [100001])


@pytest.mark.parametrize(("response", "detail"), [
    (httpx.Response(502, html="<html><body>Bad gateway</body></html>"), "HTTP 502: <html><body>Bad gateway</body>"),
    (httpx.Response(500, text=""), "HTTP 500"),
    (httpx.Response(404, json={"detail": "Not Found"}), "Not Found"),  # FastAPI's own errors
    (httpx.Response(422, json=["not", "an", "object"]), "HTTP 422: "),
    (httpx.Response(401, content=b"\xff\xfe denied", headers={"content-type": "application/json"}), "HTTP 401: "),
])
def test_non_problem_bodies(mock_client: MakeClient, response: httpx.Response, detail: str) -> None:
    with pytest.raises(APIError) as error:
        mock_client(Script(response)).methods()
    assert str(error.value).startswith(detail) and error.value.status == response.status_code
    assert error.value.field is None and error.value.errors == []


def test_api_key_is_sent_as_bearer(mock_client: MakeClient) -> None:
    script = Script(ok, ok)
    mock_client(script, api_key="s3cret").tensor("normal", [2])
    mock_client(script).tensor("normal", [2])
    assert script.requests[0].headers["authorization"] == "Bearer s3cret"
    assert "authorization" not in script.requests[1].headers
    assert script.requests[0].headers["user-agent"].startswith("initserve-client/")
    assert script.requests[0].url.path == "/v1/tensor" and script.requests[0].url.params["format"] == "raw"
    assert json.loads(script.requests[0].content)["method"] == "normal"


def test_base_url_path_prefix_is_kept(sleeps: list[float]) -> None:
    script = Script(httpx.Response(200, json=[]))
    with Client("http://gateway.test/initserve/", transport=httpx.MockTransport(script)) as client:
        client.methods()
    assert str(script.requests[0].url) == "http://gateway.test/initserve/v1/methods"


def test_a_broken_body_is_retried_from_scratch(mock_client: MakeClient, sleeps: list[float], tmp_path: Path) -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield RAW_BODY[:3]
            raise httpx.ReadError("connection reset")

    script = Script(httpx.Response(200, headers={**RAW_HEADERS, "content-length": "8"}, stream=Broken()),
                    httpx.Response(200, headers={**RAW_HEADERS, "content-length": "8"}, stream=Broken()), ok)
    target = mock_client(script).download_tensor("normal", [2], tmp_path / "w.raw", format="raw")
    assert target.read_bytes() == RAW_BODY and [p.name for p in tmp_path.iterdir()] == ["w.raw"]
    assert sleeps == [0.5, 1.0]


def test_parse_retry_after() -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert _retry.parse_retry_after("120", now) == 120.0
    assert _retry.parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now) == 30.0
    assert _retry.parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now) == 0.0
    assert _retry.parse_retry_after("soon", now) is None and _retry.parse_retry_after(None) is None
    assert _retry.parse_retry_after("-5", now) is None


@pytest.mark.anyio
async def test_async_retries_and_errors(sleeps: list[float]) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    answers = [httpx.Response(503, headers={"retry-after": "2"}), httpx.Response(429), ok(None),  # type: ignore[arg-type]
               problem(422), httpx.Response(503), httpx.Response(503), httpx.Response(503)]
    async with AsyncClient("http://initserve.test", transport=httpx.MockTransport(handler), retries=2,
                           api_key="k") as client:
        assert (await client.tensor("normal", [2])).tolist() == [1.5, -2.0]
        assert sleeps == [2.0, 1.0]
        with pytest.raises(InvalidRequest):
            await client.tensor("normal", [2])
        with pytest.raises(Unavailable):
            await client.tensor("normal", [2])
    assert sleeps == [2.0, 1.0, 0.5, 1.0] and answers == []

    async def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with AsyncClient("http://initserve.test", transport=httpx.MockTransport(refused), retries=2) as client:
        with pytest.raises(TransportError):
            await client.methods()
    assert sleeps[4:] == [0.5, 1.0]


def test_settings_are_checked() -> None:
    for bad in ({"retries": -1}, {"retries": 1.5}, {"backoff": float("nan")}, {"timeout": 0}, {"progress": "yes"}):
        with pytest.raises(ValueError):
            Client("http://initserve.test", **bad)
    with pytest.raises(ValueError):
        Client("")
