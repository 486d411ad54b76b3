"""Who may call: API keys, a per-key rate limit and CORS (``INITSERVE_API_KEYS`` … ``INITSERVE_CORS_ORIGINS``).

:func:`install_access` puts two pure ASGI middlewares around the app (pure ASGI, not
``BaseHTTPMiddleware``: a tensor answer streams through them untouched, never buffered)::

    CORSMiddleware          only when INITSERVE_CORS_ORIGINS is set
      AccessMiddleware      only when API keys or a rate limit are set
        the app

CORS is outside: it answers a browser's preflight ``OPTIONS`` itself (a preflight never carries
the key, so it must not meet the key check), and it adds its headers to every answer that comes
out of the access check, 401 and 429 included, so that a page can read why it was refused.

**API keys.** With any key configured (``INITSERVE_API_KEYS``, comma-separated, and/or
``INITSERVE_API_KEYS_FILE``, one per line, ``#`` comment lines and blank lines ignored), every
request but ``/healthz`` and ``/readyz`` needs ``Authorization: Bearer <key>``, else a 401
problem (field ``Authorization``; its value is ``null`` or ``"Bearer ***"``, never the key) with
``WWW-Authenticate: Bearer``. Only the SHA-256 digests of the keys are kept, and a presented key is
compared by digest with ``hmac.compare_digest`` against every configured key, without stopping at
a match: the time taken says nothing about how close a guess was, nor which key matched. Keys
never appear in logs, exceptions, answers or reprs (``Settings.api_keys`` is a ``SecretStr``). A
keys file that cannot be read, or a key that cannot travel in a header (empty, spaces, non-ASCII),
is an :class:`AccessConfigError` when the app is created: the server does not start.

**Who called.** An accepted key's non-secret id, the first 8 hex digits of its SHA-256, is put
in the ASGI scope under :data:`KEY_ID_SCOPE` (``scope["initserve.key_id"]``) before the app
runs, for the access log; middlewares outside this one share the same scope dict and read it
once the app has answered. It is absent when no keys are configured or the request was refused.
Keys should be long random strings (``python -c 'import secrets; print(secrets.token_urlsafe(32))'``):
an 8-hex id of a short key could be brute-forced back from the logs.

**Rate limit.** With ``INITSERVE_RATE_LIMIT`` = r > 0, each key (each client address when no keys
are configured: ``scope["client"]``, which uvicorn rewrites from ``X-Forwarded-For`` only for
trusted proxies, see its ``--forwarded-allow-ips``) has a token bucket of ``INITSERVE_RATE_BURST``
tokens refilled at r per second; a request takes one token, and one that finds none is a 429
problem with ``Retry-After`` (whole seconds until the next token, at least 1). ``/healthz`` and
``/readyz`` take no token; a refused key takes none either (a 401 comes first). Buckets live in the
worker process: with ``INITSERVE_WORKERS`` = n a client whose requests spread over every worker may
get up to n·r per second (one keep-alive connection stays on one worker, and gets r). The limit is
deliberately not divided by n: that would make a single-connection client n times slower than
configured. For an exact global limit put one in the proxy in front (nginx ``limit_req``). At most
:data:`MAX_BUCKETS` buckets are kept, least recently used evicted first, so a flood of addresses
cannot grow memory; an evicted client restarts with a full bucket.

The middleware does no I/O between reading a bucket and updating it, so the single-threaded
event loop makes each take atomic; no lock is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from initserve.api.errors import Described, problem_answer
from initserve.api.metrics import rejected
from initserve.api.settings import Settings

KEY_ID_SCOPE = "initserve.key_id"
"""ASGI scope key holding the accepted API key's id (8 hex digits of its SHA-256)."""

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
"""Paths that need no key and take no token: probes must work whatever the keys and load."""

MAX_BUCKETS = 10_000
"""Most rate-limit buckets kept per process (least recently used evicted)."""

CORS_METHODS = ("GET", "POST", "HEAD", "OPTIONS")
CORS_ALLOW_HEADERS = ("Authorization", "Content-Type", "Range", "If-None-Match", "If-Range")
CORS_EXPOSE_HEADERS = (
    "ETag", "Content-Range", "Content-Location", "Accept-Ranges", "Retry-After", "WWW-Authenticate", "X-Request-ID",
    "X-Initserve-Algorithm-Version", "X-Initserve-Spec", "X-Initserve-Window", "X-Initserve-Shape",
    "X-Initserve-Dtype",
)
"""Response headers a page may read (CORS has no wildcard for a prefix such as ``X-Initserve-*``)."""

BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key as `Authorization: Bearer <key>`. Enforced only when the service is configured with "
    "INITSERVE_API_KEYS or INITSERVE_API_KEYS_FILE (401 without a valid key); /healthz and /readyz never need it.",
}
"""The OpenAPI security scheme: declared whatever the settings, so that the document does not depend on them."""

_VISIBLE_ASCII = frozenset(range(0x21, 0x7F))


class AccessConfigError(RuntimeError):
    """The access settings cannot be used (unreadable keys file, a key that cannot be sent); never holds a key."""


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


@dataclass(frozen=True, repr=False)
class ApiKeys:
    """The configured keys, as SHA-256 digests only (the keys themselves are dropped once hashed)."""

    digests: tuple[bytes, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.digests)

    def __repr__(self) -> str:
        return f"ApiKeys(<{len(self.digests)} keys>)"

    def identify(self, key: bytes) -> int | None:
        """The index of ``key`` among the configured keys, else None. Compares the digest with every
        configured digest, also after a match: the time taken depends only on the number of keys."""
        presented = _digest(key)
        found: int | None = None
        for index, digest in enumerate(self.digests):
            if hmac.compare_digest(presented, digest):
                found = index
        return found

    def key_id(self, index: int) -> str:
        """The non-secret id of key ``index``: the first 8 hex digits of its SHA-256."""
        return self.digests[index].hex()[:8]


def _check_key(key: str, where: str) -> bytes:
    """``key`` as bytes, if it can travel in an ``Authorization`` header (the message never quotes it)."""
    data = key.encode("utf-8")
    if not data or not set(data) <= _VISIBLE_ASCII:
        raise AccessConfigError(f"{where}: an API key must be printable ASCII without spaces (key not shown)")
    return data


def load_api_keys(settings: Settings) -> ApiKeys:
    """The keys of ``INITSERVE_API_KEYS`` and ``INITSERVE_API_KEYS_FILE``, hashed. Raises
    :class:`AccessConfigError` when the file cannot be read or a key is unusable."""
    keys: list[bytes] = []
    listed = settings.api_keys.get_secret_value()
    for number, key in enumerate(listed.split(","), start=1):
        if key.strip():
            keys.append(_check_key(key.strip(), f"INITSERVE_API_KEYS, key {number}"))
    if settings.api_keys_file:
        path = Path(settings.api_keys_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise AccessConfigError(f"INITSERVE_API_KEYS_FILE={str(path)!r}: cannot read the keys file: {reason}") \
                from None
        for number, line in enumerate(text.splitlines(), start=1):
            key = line.strip()
            if key and not key.startswith("#"):
                keys.append(_check_key(key, f"INITSERVE_API_KEYS_FILE={str(path)!r}, line {number}"))
        if not keys:
            raise AccessConfigError(f"INITSERVE_API_KEYS_FILE={str(path)!r}: the keys file holds no key "
                                    "(an empty file would leave the service open)")
    return ApiKeys(tuple(dict.fromkeys(_digest(key) for key in keys)))


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """One token bucket per client: ``burst`` tokens, refilled at ``rate`` per second, at most
    ``max_buckets`` of them (least recently used evicted). ``clock`` is injectable for tests."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = MAX_BUCKETS) -> None:
        if rate <= 0 or burst < 1 or max_buckets < 1:
            raise ValueError("rate > 0, burst >= 1 and max_buckets >= 1 are required")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str) -> int:
        """Take one token of ``client``'s bucket: 0 when there was one, else the whole seconds (≥ 1)
        until the next token."""
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
            bucket.tokens = min(float(self.burst), bucket.tokens + max(0.0, now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))


def _authorization(scope: Scope) -> list[bytes]:
    return [value for name, value in scope["headers"] if name == b"authorization"]


def _bearer_token(values: list[bytes]) -> bytes | None:
    """The token of exactly one ``Authorization: Bearer <token>`` header (scheme case-insensitive), else None."""
    if len(values) != 1:
        return None
    scheme, _, token = values[0].strip().partition(b" ")
    token = token.strip(b" \t")
    if scheme.lower() != b"bearer" or not token or not set(token) <= _VISIBLE_ASCII:
        return None
    return token


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


class AccessMiddleware:
    """Checks the API key and takes a rate-limit token before the app sees a request (see the module
    docstring); answers 401 or 429 itself, and passes everything else through untouched."""

    def __init__(self, app: ASGIApp, *, keys: ApiKeys, buckets: TokenBuckets | None) -> None:
        self.app = app
        self.keys = keys
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _route_path(scope) in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.keys:
            values = _authorization(scope)
            token = _bearer_token(values)
            index = self.keys.identify(token) if token is not None else None
            if index is None:
                await self._unauthorized(scope, receive, send, values, token)
                return
            scope[KEY_ID_SCOPE] = self.keys.key_id(index)
            client, field, value = f"key:{index}", "Authorization", "Bearer ***"
        else:
            address = scope.get("client")
            host = str(address[0]) if address else "unknown"
            client, field, value = f"address:{host}", "client", host
        if self.buckets is not None:
            wait = self.buckets.take(client)
            if wait:
                rejected("rate_limited")
                per = "API key" if field == "Authorization" else "client address"
                message = (f"over {self.buckets.rate:g} requests per second (burst {self.buckets.burst}) "
                           f"for this {per}; retry in {wait} s")
                answer = problem_answer(429, "rate-limited", "Too many requests", Described(field, value, message),
                                        {"Retry-After": str(wait)})
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _unauthorized(self, scope: Scope, receive: Receive, send: Send, values: list[bytes],
                            token: bytes | None) -> None:
        rejected("unauthorized")
        challenge = 'Bearer realm="initserve"'
        if not values:
            value, message = None, "is required: send `Authorization: Bearer <API key>`"
        elif token is None:
            value, message = "***", "must be one `Bearer <API key>` header"
        else:
            value, message = "Bearer ***", "unknown API key"
            challenge += ', error="invalid_token"'
        answer = problem_answer(401, "unauthorized", "Unauthorized", Described("Authorization", value, message),
                                {"WWW-Authenticate": challenge})
        await answer(scope, receive, send)


def cors_origins(settings: Settings) -> list[str]:
    """The origins of ``INITSERVE_CORS_ORIGINS`` (``["*"]`` for any); empty: CORS off."""
    return [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]


def declare_bearer(document: dict[str, Any]) -> dict[str, Any]:
    """Add the optional bearer scheme to an OpenAPI ``document`` (in place, idempotent): every operation
    may send it (``security: [{}, {"bearer": []}]``: anonymous or bearer), the open paths need none."""
    document.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = BEARER_SCHEME
    document["security"] = [{}, {"bearer": []}]
    for path in OPEN_PATHS:
        for operation in document.get("paths", {}).get(path, {}).values():
            if isinstance(operation, dict):
                operation["security"] = []
    return document


def install_access(app: FastAPI, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
    """Install the access check and CORS on ``app`` as ``settings`` say (call once, before serving), and
    declare the bearer scheme in its OpenAPI document. Raises :class:`AccessConfigError` on unusable keys."""
    keys = load_api_keys(settings)
    buckets = TokenBuckets(settings.rate_limit, settings.rate_burst, clock=clock) if settings.rate_limit > 0 else None
    if keys or buckets is not None:
        app.add_middleware(AccessMiddleware, keys=keys, buckets=buckets)
    origins = cors_origins(settings)
    if origins:  # added after AccessMiddleware, hence outside it
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=CORS_METHODS,
                           allow_headers=CORS_ALLOW_HEADERS, expose_headers=CORS_EXPOSE_HEADERS)
    previous = app.openapi

    def openapi() -> dict[str, Any]:
        return declare_bearer(previous())

    app.openapi = openapi  # type: ignore[method-assign]
