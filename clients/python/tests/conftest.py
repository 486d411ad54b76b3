"""Fixtures of the client tests: the service in-process (sync and async), a real server process, mocks.

In-process, the async client gets ``httpx.ASGITransport(app)``. httpx has no sync ASGI transport, so
the sync client gets :class:`SyncASGITransport`: each request is run through ``httpx.ASGITransport`` on
one event loop that a blocking portal keeps in a background thread (what starlette's ``TestClient``
does inside, without relying on its private transport class). Both clients thus talk to
``initserve.api.create_app(Settings(...))`` exactly as over the network, minus the sockets.

Tests needing the service package (``initserve``) skip when it is not installed; the mock-transport
tests need only the client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio.from_thread
import httpx
import pytest

from initserve_client import AsyncClient, Client, _retry


class SyncASGITransport(httpx.BaseTransport):
    """A sync httpx transport onto an ASGI app (see the module docstring)."""

    def __init__(self, app: Any, portal: anyio.from_thread.BlockingPortal) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def run() -> httpx.Response:
            forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            response = await self._inner.handle_async_request(forwarded)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self._portal.call(run)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def portal() -> Iterator[anyio.from_thread.BlockingPortal]:
    with anyio.from_thread.start_blocking_portal() as blocking_portal:
        yield blocking_portal


@pytest.fixture(scope="session")
def app() -> Any:
    """The service with default settings but small limits where tests need them to bite."""
    api = pytest.importorskip("initserve.api", reason="the initserve service package")
    return api.create_app(api.Settings(max_elements=1 << 20, max_json_elements=1 << 12, max_dense_side=256))


@pytest.fixture
def sync_transport(app: Any, portal: anyio.from_thread.BlockingPortal) -> SyncASGITransport:
    return SyncASGITransport(app, portal)


@pytest.fixture
def client(sync_transport: SyncASGITransport) -> Iterator[Client]:
    with Client("http://initserve.test", transport=sync_transport, retries=0, progress=False) as sync_client:
        yield sync_client


@pytest.fixture
async def aclient(app: Any) -> Any:
    async with AsyncClient("http://initserve.test", transport=httpx.ASGITransport(app=app), retries=0,
                           progress=False) as async_client:
        yield async_client


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Records the retry delays instead of sleeping (sync and async)."""
    delays: list[float] = []

    async def async_sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(_retry, "sleep", delays.append)
    monkeypatch.setattr(_retry, "async_sleep", async_sleep)
    return delays


Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def mock_client(sleeps: list[float]) -> Iterator[Callable[..., Client]]:
    """``mock_client(handler, **settings)``: a sync client whose requests go to ``handler`` (sleeps recorded)."""
    opened: list[Client] = []

    def make(handler: Handler, **settings: Any) -> Client:
        settings.setdefault("progress", False)
        opened.append(Client("http://initserve.test", transport=httpx.MockTransport(handler), **settings))
        return opened[-1]

    yield make
    for each in opened:
        each.close()


# --- a real server process ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """``initserve serve`` on a free loopback port; its base URL."""
    testing = pytest.importorskip("initserve.testing", reason="the initserve service package")
    with testing.live_server() as url:
        yield url
