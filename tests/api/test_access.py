"""Access control: API keys (401), per-key rate limit (429), CORS, and the key id for the access log."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.middleware.base import BaseHTTPMiddleware

from initserve.api import Settings, create_app
from initserve.api.access import (
    KEY_ID_SCOPE,
    AccessConfigError,
    AccessMiddleware,
    TokenBuckets,
    load_api_keys,
)
from initserve.testing import ServerProcess

from .cases import SMALL, TestClient, assert_problem

KEY1 = "k1-Zx8uT3qWv9sLrB2nM4pY7cE5"
KEY2 = "k2-Hq2wE4rT6yU8iO0pA3sD5fG7"
GAIN = "/v1/gain?nonlinearity=relu"
TENSOR = "/v1/tensor?method=normal&shape=64,64&seed=3"


def settings(**changes: Any) -> Settings:
    """SMALL's limits with ``changes``, validated (``api_keys`` becomes a SecretStr)."""
    return Settings(**{**SMALL.model_dump(), **changes})


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def rejections(reason: str) -> float:
    return REGISTRY.get_sample_value("initserve_rejections_total", {"reason": reason}) or 0.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def with_clock(app: Any, clock: FakeClock) -> Any:
    """``app`` with the rate limiter of its access middleware reading ``clock`` (before it starts)."""
    (middleware,) = [m for m in app.user_middleware if m.cls is AccessMiddleware]
    middleware.kwargs["buckets"].clock = clock
    return app


def never_shows(key: str, response: httpx.Response) -> None:
    assert key not in response.text
    assert all(key not in value for value in response.headers.values())


# --- API keys ---------------------------------------------------------------------------------------------


@pytest.fixture
def keyed() -> Any:
    with TestClient(create_app(settings(api_keys=f"{KEY1}, {KEY2}"))) as client:
        yield client


def test_no_key_is_a_401_problem_with_a_bearer_challenge(keyed):
    before = rejections("unauthorized")
    response = keyed.get(GAIN)
    problem = assert_problem(response, 401, "Authorization", None)
    assert problem["type"] == "urn:initserve:problem:unauthorized" and problem["title"] == "Unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert rejections("unauthorized") == before + 1


def test_wrong_key_is_a_401_that_does_not_echo_it(keyed):
    wrong = KEY1 + "x"
    response = keyed.get(GAIN, headers=bearer(wrong))
    assert_problem(response, 401, "Authorization", "Bearer ***")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    never_shows(wrong, response)


@pytest.mark.parametrize("header", [
    f"Basic {KEY1}", KEY1, "Bearer", "Bearer ", f"Bearer {KEY1} extra", f"Token {KEY1}", f"Bearer\t{KEY1}",
])
def test_malformed_authorization_is_a_401(keyed, header):
    response = keyed.get(GAIN, headers={"Authorization": header})
    assert_problem(response, 401, "Authorization", "***")
    never_shows(KEY1, response)


def test_two_authorization_headers_are_refused(keyed):
    response = keyed.get(GAIN, headers=[("Authorization", f"Bearer {KEY1}"), ("Authorization", f"Bearer {KEY2}")])
    assert_problem(response, 401, "Authorization", "***")


@pytest.mark.parametrize("key", [KEY1, KEY2])
def test_each_valid_key_is_let_in(keyed, key):
    assert keyed.get(GAIN, headers=bearer(key)).json()["gain"] == pytest.approx(2**0.5)
    assert keyed.get(GAIN, headers={"Authorization": f"bearer  {key} "}).status_code == 200  # scheme: any case
    streamed = keyed.get(TENSOR, headers=bearer(key))
    assert streamed.status_code == 200 and len(streamed.content) == int(streamed.headers["content-length"])
    never_shows(key, streamed)
    assert keyed.post("/v1/tensor", json={"method": "zeros", "shape": [2]}, headers=bearer(key)).status_code == 200


def test_every_route_needs_the_key(keyed):
    for path in ["/v1/methods", "/v1/fans?shape=3,4", TENSOR, "/openapi.json", "/docs", "/nowhere"]:
        assert keyed.get(path).status_code == 401, path
    assert keyed.head(TENSOR).status_code == 401
    assert keyed.options(TENSOR).status_code == 401  # not a CORS preflight, and CORS is off


def test_probes_stay_open(keyed):
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/healthz", headers=bearer("wrong")).status_code == 200
    assert keyed.get("/readyz").status_code == 200
    assert keyed.get("/metrics").status_code == 401  # Prometheus sends the key (its `authorization` setting)


def test_keys_file(tmp_path: Path):
    path = tmp_path / "keys"
    path.write_text(f"# deploy keys\n\n  {KEY1}  \n# {KEY2} retired\nthird-key_4.5~/+=\n", encoding="utf-8")
    both = settings(api_keys="env-key-1", api_keys_file=str(path))
    with TestClient(create_app(both)) as client:
        for key in [KEY1, "third-key_4.5~/+=", "env-key-1"]:
            assert client.get(GAIN, headers=bearer(key)).status_code == 200, key
        for key in [KEY2, f"# {KEY2} retired", "# deploy keys"]:
            assert client.get(GAIN, headers=bearer(key)).status_code == 401, key


def test_unreadable_or_empty_keys_file_stops_the_start(tmp_path: Path):
    missing = tmp_path / "absent"
    with pytest.raises(AccessConfigError, match="INITSERVE_API_KEYS_FILE=.*absent.*No such file"):
        create_app(settings(api_keys_file=str(missing)))
    with pytest.raises(AccessConfigError, match="cannot read"):
        create_app(settings(api_keys_file=str(tmp_path)))  # a directory
    empty = tmp_path / "empty"
    empty.write_text("# nobody yet\n\n", encoding="utf-8")
    with pytest.raises(AccessConfigError, match="holds no key"):
        create_app(settings(api_keys_file=str(empty)))


@pytest.mark.parametrize("keys", ["good-key,bad key-Q7", "good-key,bad\u00e9key-Q7"])
def test_unusable_key_stops_the_start_without_showing_it(keys):
    with pytest.raises(AccessConfigError, match="key 2") as raised:
        create_app(settings(api_keys=keys))
    assert "Q7" not in str(raised.value) and "good-key" not in str(raised.value)


def test_keys_never_show_in_reprs_or_logs(caplog, capfd):
    configured = settings(api_keys=f"{KEY1},{KEY2}")
    assert KEY1 not in repr(configured) and KEY1 not in str(configured)
    assert KEY1 not in repr(load_api_keys(configured)) and KEY1 not in str(configured.model_dump())
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(configured)) as client:
        answers = [client.get(GAIN, headers=bearer(KEY1[:-1])), client.get(GAIN, headers=bearer(KEY2 + "0")),
                   client.get(GAIN, headers={"Authorization": KEY1}), client.get(GAIN, headers=bearer(KEY2))]
    assert [answer.status_code for answer in answers] == [401, 401, 401, 200]
    captured = capfd.readouterr()
    for key in [KEY1, KEY2, KEY1[:-1]]:
        assert key not in caplog.text and key not in captured.out and key not in captured.err
        for answer in answers:
            never_shows(key, answer)


def test_accepted_key_id_is_on_the_scope():
    seen: list[Any] = []

    class Capture:  # an outer pure ASGI middleware, as the access log is
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await self.app(scope, receive, send)
            if scope["type"] == "http":
                seen.append(scope.get(KEY_ID_SCOPE))

    app = create_app(settings(api_keys=f"{KEY1},{KEY2}"))
    app.add_middleware(Capture)
    with TestClient(app) as client:
        client.get(GAIN, headers=bearer(KEY2))
        client.get(GAIN, headers=bearer("wrong"))
        client.get("/healthz")
    assert seen == [hashlib.sha256(KEY2.encode()).hexdigest()[:8], None, None]


def test_middleware_streams_rather_than_buffers():
    assert not issubclass(AccessMiddleware, BaseHTTPMiddleware)


# --- rate limit --------------------------------------------------------------------------------------------


def test_bucket_refills_at_the_rate_up_to_the_burst():
    clock = FakeClock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(4)] == [0, 0, 0, 1]
    clock.now += 0.25  # half a token
    assert buckets.take("a") == 1  # ceil(0.5 token / 2 per s) = 1 s at least
    clock.now += 0.25
    assert buckets.take("a") == 0
    clock.now += 3600
    assert [buckets.take("a") for _ in range(4)] == [0, 0, 0, 1]  # capped at the burst
    slow = TokenBuckets(rate=0.1, burst=1, clock=clock)
    assert (slow.take("a"), slow.take("a")) == (0, 10)
    clock.now += 2.5
    assert slow.take("a") == 8  # ceil(7.5)


def test_buckets_are_bounded():
    clock = FakeClock()
    buckets = TokenBuckets(rate=1.0, burst=1, clock=clock, max_buckets=3)
    for address in ["a", "b", "c"]:
        assert buckets.take(address) == 0
    assert buckets.take("a") == 1  # a is now the most recently used
    assert buckets.take("d") == 0 and len(buckets) == 3  # b evicted
    assert buckets.take("a") == 1 and buckets.take("c") == 1
    assert buckets.take("b") == 0  # forgotten: a fresh bucket


def test_over_the_burst_is_a_429_with_retry_after_then_recovers():
    clock = FakeClock()
    app = with_clock(create_app(settings(api_keys=f"{KEY1},{KEY2}", rate_limit=0.5, rate_burst=2)), clock)
    before = rejections("rate_limited")
    with TestClient(app) as client:
        assert [client.get(GAIN, headers=bearer(KEY1)).status_code for _ in range(2)] == [200, 200]
        refused = client.get(GAIN, headers=bearer(KEY1))
        problem = assert_problem(refused, 429, "Authorization", "Bearer ***")
        assert problem["type"] == "urn:initserve:problem:rate-limited"
        assert refused.headers["retry-after"] == "2"  # one token per 2 s
        never_shows(KEY1, refused)
        assert client.get(GAIN, headers=bearer(KEY2)).status_code == 200  # each key has its bucket
        for probe in ["/healthz", "/readyz"]:
            assert client.get(probe, headers=bearer(KEY1)).status_code == 200  # probes take no token
        for _ in range(3):
            assert client.get(GAIN, headers=bearer("wrong")).status_code == 401  # a 401 takes no token
        clock.now += 1.5
        assert client.get(GAIN, headers=bearer(KEY1)).headers["retry-after"] == "1"
        clock.now += 0.5
        assert client.get(GAIN, headers=bearer(KEY1)).status_code == 200
        assert client.get(GAIN, headers=bearer(KEY1)).status_code == 429
    assert rejections("rate_limited") == before + 3


def test_without_keys_the_limit_is_per_client_address():
    clock = FakeClock()
    app = with_clock(create_app(settings(rate_limit=1, rate_burst=1)), clock)
    with TestClient(app) as client, TestClient(app, client=("192.0.2.7", 4000)) as other:
        assert client.get(GAIN).status_code == 200
        assert_problem(client.get(GAIN), 429, "client", "testclient")
        assert other.get(GAIN).status_code == 200
        assert_problem(other.get(GAIN), 429, "client", "192.0.2.7")
        clock.now += 1
        assert client.get(GAIN).status_code == 200


def test_real_time_recovery():
    with TestClient(create_app(settings(rate_limit=5, rate_burst=1))) as client:  # one token per 0.2 s
        assert client.get(GAIN).status_code == 200
        refused = client.get(GAIN)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        time.sleep(0.25)
        assert client.get(GAIN).status_code == 200


# --- CORS ----------------------------------------------------------------------------------------------------


def test_no_cors_headers_by_default(client):
    response = client.get(GAIN, headers={"Origin": "https://app.example"})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]
    preflight = client.options("/v1/tensor", headers={"Origin": "https://app.example",
                                                      "Access-Control-Request-Method": "POST"})
    assert not [name for name in preflight.headers if name.lower().startswith("access-control-")]
    assert not [m for m in create_app(SMALL).user_middleware if m.cls is AccessMiddleware]  # nothing to check


def test_cors_preflight_needs_no_key_and_refusals_carry_cors_headers():
    origin = "https://app.example"
    app = with_clock(create_app(settings(api_keys=KEY1, rate_limit=1, rate_burst=1,
                                         cors_origins=f"{origin}, https://other.example")), FakeClock())
    with TestClient(app) as client:
        preflight = client.options("/v1/tensor", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, range"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert {"GET", "POST", "HEAD", "OPTIONS"} <= set(preflight.headers["access-control-allow-methods"].split(", "))
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "range", "if-none-match", "if-range"} <= set(allowed.split(", "))
        stranger = client.options("/v1/tensor", headers={"Origin": "https://evil.example",
                                                         "Access-Control-Request-Method": "GET"})
        assert stranger.status_code == 400 and "access-control-allow-origin" not in stranger.headers

        refused = client.get(TENSOR, headers={"Origin": origin})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == origin
        exposed = refused.headers["access-control-expose-headers"].lower()
        for header in ["etag", "content-range", "content-location", "retry-after", "www-authenticate",
                       "x-request-id", "x-initserve-spec", "x-initserve-window", "x-initserve-shape"]:
            assert header in exposed
        served = client.get(TENSOR, headers={"Origin": origin, **bearer(KEY1)})
        assert served.status_code == 200 and served.headers["access-control-allow-origin"] == origin
        limited = client.get(TENSOR, headers={"Origin": origin, **bearer(KEY1)})
        assert limited.status_code == 429 and limited.headers["access-control-allow-origin"] == origin


def test_cors_any_origin():
    with TestClient(create_app(settings(cors_origins="*"))) as client:
        response = client.get(GAIN, headers={"Origin": "https://anywhere.example"})
        assert response.headers["access-control-allow-origin"] == "*"


# --- OpenAPI and a real server ---------------------------------------------------------------------------------


def test_openapi_declares_an_optional_bearer_scheme_whatever_the_settings():
    keyed = create_app(settings(api_keys=KEY1)).openapi()
    document = create_app(SMALL).openapi()
    assert keyed == document
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["security"] == [{}, {"bearer": []}]  # anonymous or bearer: enforced only when keys are set
    assert document["paths"]["/healthz"]["get"]["security"] == document["paths"]["/readyz"]["get"]["security"] == []


def test_real_server_with_keys():
    with ServerProcess(env={"INITSERVE_API_KEYS": f"{KEY1},{KEY2}", "INITSERVE_RATE_LIMIT": "0.5",
                            "INITSERVE_RATE_BURST": "1"}) as server:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert httpx.get(f"{server.url}{GAIN}").status_code == 401
        assert httpx.get(f"{server.url}{GAIN}", headers=bearer(KEY1[:-1])).status_code == 401
        assert httpx.get(f"{server.url}{TENSOR}", headers=bearer(KEY1)).status_code == 200
        limited = httpx.get(f"{server.url}{GAIN}", headers=bearer(KEY1))
        assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
        assert httpx.get(f"{server.url}{GAIN}", headers=bearer(KEY2)).status_code == 200
        output = server.output()
    assert KEY1 not in output and KEY1[:-1] not in output and KEY2 not in output
