"""The client against a real server that requires API keys and rate-limits them: ``api_key=`` is sent as
``Authorization: Bearer``, a wrong key is :class:`Unauthorized` (never retried), and a 429 is retried after
the ``Retry-After`` the service sent."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from initserve_client import AsyncClient, Client, _retry
from initserve_client.errors import RateLimited, Unauthorized

KEY = "client-test-Xq7Lm2Vb9Rt4Kp1Wz6Nd3"
OTHER_KEY = "client-test-other-Hs5Gf8Jc2Ue0Yo"


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[str]:
    """A server with two keys, one request per second per key, burst 1."""
    testing = pytest.importorskip("initserve.testing", reason="the initserve service package")
    env = {"INITSERVE_API_KEYS": f"{KEY},{OTHER_KEY}", "INITSERVE_RATE_LIMIT": "1", "INITSERVE_RATE_BURST": "1"}
    with testing.live_server(env=env) as url:
        yield url


@pytest.fixture
def real_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry delays, recorded and really slept (the server's bucket must refill)."""
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(_retry, "sleep", sleep)
    return delays


def test_wrong_or_missing_key_is_unauthorized_at_once(keyed_server: str, real_sleeps: list[float]) -> None:
    for key in [KEY[:-1], None]:
        with Client(keyed_server, api_key=key, retries=3, progress=False) as client, \
                pytest.raises(Unauthorized) as raised:
            client.gain("relu")
        error = raised.value
        assert error.status == 401 and error.field == "Authorization"
        assert error.value == ("Bearer ***" if key else None)
        assert error.headers["www-authenticate"].startswith("Bearer")
        assert KEY not in str(error) and KEY not in repr(error)
    assert real_sleeps == []  # a 401 is never retried


def test_key_is_sent_and_429_waits_for_retry_after(keyed_server: str, real_sleeps: list[float]) -> None:
    # the bucket holds one request: the second one is refused
    with Client(keyed_server, api_key=KEY, retries=0, progress=False) as impatient, \
            pytest.raises(RateLimited) as raised:
        for _ in range(2):
            impatient.gain("relu")
    assert raised.value.retry_after == 1.0 and raised.value.field == "Authorization"
    with Client(keyed_server, api_key=KEY, retries=3, backoff=0.01, progress=False) as client:
        tensor = client.tensor("normal", [4, 4], seed=1)  # refused, then served after Retry-After
    assert tensor.shape == (4, 4) and tensor.dtype == np.float32
    assert real_sleeps and all(delay == 1.0 for delay in real_sleeps)  # Retry-After, not the 0.01 s backoff


@pytest.mark.anyio
async def test_async_client_sends_its_key(keyed_server: str) -> None:
    async with AsyncClient(keyed_server, api_key=OTHER_KEY, retries=3, progress=False) as client:
        assert (await client.fans([64, 3, 3, 3]))["fan_in"] == 27
