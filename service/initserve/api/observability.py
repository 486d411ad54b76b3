"""Observability: request ids, metrics, access logs and readiness, in one pure ASGI wrapper.

:func:`install_observability` (called by ``create_app``) wraps the app's *whole* middleware stack,
Starlette's ``ServerErrorMiddleware`` included, in :class:`Observability`. Outermost, because a 500
is written by ``ServerErrorMiddleware`` (the outermost layer ``add_middleware`` could reach is inside
it) and the 401/429 of :mod:`initserve.api.access`, the 413 of a body limit and the 503 of the
admission control are answered by middlewares: every one of them must carry the request id and be
counted. A pure ASGI wrapper, not ``BaseHTTPMiddleware``: a streamed tensor passes through chunk by
chunk, never buffered.

Per HTTP request it

- takes the request id from ``X-Request-ID`` when it is sane (1–128 characters of
  ``[A-Za-z0-9._:-]``: safe to echo in a header and to write in a log line), else makes one (uuid4
  hex); puts it in ``scope["state"]["request_id"]`` (``request.state.request_id`` in a route) and
  echoes it in the ``X-Request-ID`` header of every answer, errors and 500s included;
- labels metrics with the *route template* the path matches (``/v1/tensor``; ``other`` for unknown
  paths) and a known method (else ``other``): a raw path or method as a label value would let any
  client create unbounded time series;
- records ``initserve_requests_total{route, method, status}`` and
  ``initserve_request_duration_seconds{route, method}``, measured until the last body byte is handed to
  the server (or the client went away, or the app gave up); a request whose client left before any
  answer has status 499 (nginx's "client closed request");
- adds to ``initserve_generated_bytes_total{route}`` the body bytes of 2xx answers of the generation
  routes :data:`GENERATION_ROUTES` (``/v1/tensor``, ``/v1/model``: tensor and model bytes; the small
  JSON of the catalogue and statistics routes is not "generated"), chunk by chunk, so a scrape during a
  long stream already sees its progress;
- counts rejections that only the status code reveals: 413 as ``too_large`` and
  :data:`INVALID_STATUSES` as ``invalid``. The other reasons are counted where they are decided:
  ``unauthorized`` and ``rate_limited`` by :mod:`initserve.api.access`, ``overloaded``, ``timeout`` and
  ``disconnected`` by the admission control. **Do not call** ``rejected("too_large")`` or
  ``rejected("invalid")`` elsewhere: it would count those requests twice;
- writes one access-log line on the logger ``initserve.access`` (:data:`ACCESS_LOGGER_NAME`) as the
  ``log_format`` setting says: ``json`` (one object per line, fields :data:`LOG_FIELDS`), ``text`` or
  ``off``. ``key_id`` is the accepted API key's id that :mod:`initserve.api.access` puts in
  ``scope["initserve.key_id"]``; the ``Authorization`` header is never read here. ``path`` is the
  request target as sent (path and query: the query holds only a tensor spec), cut to
  :data:`MAX_LOGGED_TARGET` characters. ``ts`` is when the request arrived (RFC 3339, UTC).

Lifespan: when the server announces shutdown, ``app.state.shutting_down`` becomes true and
``/readyz`` answers 503 (another module may set it earlier, e.g. when draining starts); a new startup
makes it false again. With
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, which ``initserve serve`` sets
for several workers: :func:`metrics_directory`), a worker that shuts down removes its live gauges'
files so that ``livesum`` gauges count live workers only; :func:`render_metrics` sums every worker's
files at scrape time.

What never reaches the app is not seen here: requests uvicorn itself refuses (malformed HTTP) and
connections it closes at shutdown.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from initserve.api.access import KEY_ID_SCOPE
from initserve.api.metrics import DURATION, GENERATED_BYTES, REQUESTS, Reason, rejected

ACCESS_LOGGER_NAME = "initserve.access"
ACCESS_LOGGER = logging.getLogger(ACCESS_LOGGER_NAME)
LogFormat = Literal["json", "text", "off"]

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
GENERATION_ROUTES = frozenset({"/v1/tensor", "/v1/model"})
"""Routes whose 2xx body bytes count into ``initserve_generated_bytes_total``."""
INVALID_STATUSES = frozenset({400, 404, 405, 415, 416, 422})
"""Statuses counted as ``rejections_total{reason="invalid"}`` (413 is ``too_large``)."""
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"
CLIENT_CLOSED = 499
MAX_LOGGED_TARGET = 512
MAX_LOGGED_USER_AGENT = 256
LOG_FIELDS = ("ts", "request_id", "method", "path", "route", "status", "bytes", "duration_ms", "client", "key_id",
              "user_agent", "disconnected")
"""The members of a JSON access-log line, in order."""
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def sane_request_id(value: str | None) -> bool:
    """Whether a client's ``X-Request-ID`` may be kept as is."""
    return value is not None and _SANE_REQUEST_ID.fullmatch(value) is not None


def request_id_of(scope: Scope) -> str | None:
    """The request id :class:`Observability` gave this request (None outside it)."""
    state = scope.get("state")
    found = state.get("request_id") if isinstance(state, dict) else None
    return found if isinstance(found, str) else None


def rejection_reason(status: int) -> Reason | None:
    """The rejection this middleware counts for an answer of ``status`` (see the module docstring)."""
    if status == 413:
        return "too_large"
    return "invalid" if status in INVALID_STATUSES else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _printable(text: str) -> str:
    """``text`` with quotes, backslashes, control and non-ASCII characters escaped: a client cannot split a
    text log line, nor end a quoted part early to forge the fields after it."""
    return "".join(
        "\\" + char if char in '"\\' else char if " " <= char < "\x7f"
        else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def _target(scope: Scope) -> str:
    """The request target as the client sent it (percent-encoded path, then the query), cut for the log."""
    raw = scope.get("raw_path")
    path = bytes(raw).decode("latin-1") if raw else str(scope.get("path", ""))
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    return _cut(f"{path}?{query}" if query else path, MAX_LOGGED_TARGET)


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_access(fields: dict[str, Any], log_format: LogFormat) -> str:
    """One access-log line: a JSON object, or a readable line (``ts client "METHOD target" status
    bytes duration id=… key=… ua="…"``) with every client-controlled part escaped."""
    if log_format == "json":
        return json.dumps(fields, separators=(",", ":"))
    line = (f'{fields["ts"]} {fields["client"] or "-"} "{_printable(fields["method"])} {_printable(fields["path"])}" '
            f'{fields["status"]} {fields["bytes"]}B {fields["duration_ms"]:.1f}ms id={fields["request_id"]} '
            f'key={fields["key_id"] or "-"} ua="{_printable(fields["user_agent"] or "-")}"')
    return line + " disconnected" if fields["disconnected"] else line


def _leaf_routes(routes: Iterable[BaseRoute]) -> Iterator[Route | Mount]:
    """The routes that match paths themselves. FastAPI ≥ 0.16x keeps each included router as one opaque
    route whose own ``matches`` gives no template; its ``original_router`` holds the real ones."""
    for route in routes:
        if isinstance(route, Route | Mount):
            yield route
            continue
        nested = getattr(getattr(route, "original_router", None), "routes", None)
        if isinstance(nested, list):
            yield from _leaf_routes(nested)


class Observability:
    """The ASGI wrapper described in the module docstring. ``owner`` is the FastAPI app (its routes give
    the route label, its state the shutdown flag); ``app`` is the middleware stack it wraps."""

    def __init__(self, app: ASGIApp, owner: FastAPI, log_format: LogFormat) -> None:
        self.app = app
        self.owner = owner
        self.log_format = log_format
        self._routes: tuple[Route | Mount, ...] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def route_of(self, scope: Scope) -> str:
        """The template of the route ``scope`` matches (one whose path matches but not its method counts
        too: a 405 is still labelled by its route), else ``other``. Matched here, before the app runs,
        rather than read from ``scope["route"]`` afterwards: the 401, 429 and 413 answered by middlewares
        before routing get their route's label too."""
        if self._routes is None:  # built on the first request, once every route is in place
            self._routes = tuple(_leaf_routes(self.owner.router.routes))
        partial = None
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route.path
            if match is Match.PARTIAL and partial is None:
                partial = route.path
        return partial or OTHER

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        arrived, start = time.time(), time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming is not None and sane_request_id(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        route = self.route_of(scope)
        method = scope["method"] if scope["method"] in KNOWN_METHODS else OTHER
        status: int | None = None
        sent = 0
        finished: float | None = None
        disconnected = False
        generated = GENERATED_BYTES.labels(route=route) if route in GENERATION_ROUTES else None

        async def observed_receive() -> Message:
            nonlocal disconnected, finished
            message = await receive()
            if message["type"] == "http.disconnect" and finished is None:
                disconnected, finished = True, time.perf_counter()
            return message

        async def observed_send(message: Message) -> None:
            nonlocal status, sent, finished, disconnected
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            try:
                await send(message)
            except OSError:  # the server says the client is gone (ASGI 2.4)
                if finished is None:
                    disconnected, finished = True, time.perf_counter()
                raise
            if message["type"] != "http.response.body" or disconnected:
                return  # after a disconnect uvicorn drops what it is given: not sent
            size = len(message.get("body", b""))
            sent += size
            if generated is not None and size and status is not None and 200 <= status < 300:
                generated.inc(size)
            if not message.get("more_body", False):
                finished = time.perf_counter()

        try:
            await self.app(scope, observed_receive, observed_send)
        finally:
            duration = (finished if finished is not None else time.perf_counter()) - start
            # No answer at all: the client left first (499), else the server answers 500 itself (an app
            # that raised is answered by ServerErrorMiddleware, inside this wrapper, whenever it can).
            code = status if status is not None else CLIENT_CLOSED if disconnected else 500
            REQUESTS.labels(route=route, method=method, status=str(code)).inc()
            DURATION.labels(route=route, method=method).observe(duration)
            reason = rejection_reason(code)
            if reason is not None:
                rejected(reason)
            if self.log_format != "off" and ACCESS_LOGGER.isEnabledFor(logging.INFO):
                self._log(scope, arrived, request_id, route, code, sent, duration, disconnected)

    def _log(self, scope: Scope, arrived: float, request_id: str, route: str, status: int, sent: int,
             duration: float, disconnected: bool) -> None:
        client = scope.get("client")
        key_id = scope.get(KEY_ID_SCOPE)
        user_agent = _header(scope, b"user-agent")
        fields: dict[str, Any] = {
            "ts": _rfc3339(arrived),
            "request_id": request_id,
            "method": _cut(str(scope["method"]), 16),
            "path": _target(scope),
            "route": route,
            "status": status,
            "bytes": sent,
            "duration_ms": round(duration * 1000, 3),
            "client": str(client[0]) if client else None,
            "key_id": key_id if isinstance(key_id, str) else None,
            "user_agent": _cut(user_agent, MAX_LOGGED_USER_AGENT) if user_agent is not None else None,
            "disconnected": disconnected,
        }
        ACCESS_LOGGER.info(format_access(fields, self.log_format), extra={"access": fields})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def observed_receive() -> Message:
            message = await receive()
            if message["type"] in ("lifespan.startup", "lifespan.shutdown"):  # an app may be started again
                self.owner.state.shutting_down = message["type"] == "lifespan.shutdown"  # (test clients do)
            return message

        async def observed_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and os.environ.get(MULTIPROC_ENV):
                mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
            await send(message)

        await self.app(scope, observed_receive, observed_send)


def install_observability(app: FastAPI, log_format: LogFormat) -> None:
    """Wrap ``app``'s whole middleware stack (built on the first request or lifespan event) in
    :class:`Observability`, and mark the app ready (``app.state.shutting_down = False``)."""
    app.state.shutting_down = False
    build = app.build_middleware_stack

    def build_observed() -> ASGIApp:
        return Observability(build(), app, log_format)

    app.build_middleware_stack = build_observed  # type: ignore[method-assign]


def is_ready(app: FastAPI) -> bool:
    """Whether ``app`` should get new requests: it answers, so it has started; false once shutting down."""
    return not getattr(app.state, "shutting_down", False)


def render_metrics() -> bytes:
    """The Prometheus text exposition: of every worker (summed from ``PROMETHEUS_MULTIPROC_DIR``) when that
    is set, else of this process (with its process and GC collectors)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


@contextmanager
def metrics_directory(workers: int) -> Iterator[str | None]:
    """For ``workers`` > 1 and no ``PROMETHEUS_MULTIPROC_DIR`` of the user's: a fresh temporary directory
    in that variable while the block runs (then removed, and the variable unset); yields it, or None.

    uvicorn starts its workers with ``spawn``: each is a new interpreter that inherits the environment
    and imports prometheus-client afresh, so setting the variable here, before ``uvicorn.run``, makes
    every worker's metrics file-backed. A fresh directory matters: files left by an earlier run would
    be summed into this one's counters."""
    if workers <= 1 or os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="initserve-metrics-") as directory:
        os.environ[MULTIPROC_ENV] = directory
        try:
            yield directory
        finally:
            os.environ.pop(MULTIPROC_ENV, None)


def logging_config() -> dict[str, Any]:
    """uvicorn's logging configuration plus the access logger: lines as the middleware formats them, on
    stderr, not propagated (applied by uvicorn in every worker process). uvicorn's own access log is off
    (``access_log=False``): one line per request; its error log stays."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["initserve_access"] = {"format": "%(message)s"}
    config["handlers"]["initserve_access"] = {
        "class": "logging.StreamHandler", "formatter": "initserve_access", "stream": "ext://sys.stderr",
    }
    config["loggers"][ACCESS_LOGGER_NAME] = {"handlers": ["initserve_access"], "level": "INFO", "propagate": False}
    return config
