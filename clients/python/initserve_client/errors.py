"""One exception hierarchy, mirroring the service's ``application/problem+json`` answers (RFC 9457).

::

    InitserveError
    ├── InvalidSpec (also ValueError)   refused by the client before sending: field, value, message
    ├── TransportError                  no answer: connection failed (after the retries)
    ├── IntegrityError                  bytes differ from the manifest's SHA-256 (or a malformed body)
    └── APIError                        the service answered an error: status, type, title, detail, field, value, errors
        ├── BadRequest 400   ├── Unauthorized 401   ├── NotFound 404   ├── MethodNotAllowed 405
        ├── TooLarge 413     ├── InvalidRequest 422 ├── RateLimited 429 ├── Unavailable 503
        └── ServerError (any other 5xx, and other unexpected statuses)

``str(error)`` is the problem's ``detail`` (``"std=-1.0: must be >= 0"``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from initserve_client._retry import parse_retry_after

__all__ = [
    "APIError",
    "BadRequest",
    "InitserveError",
    "IntegrityError",
    "InvalidRequest",
    "InvalidSpec",
    "MethodNotAllowed",
    "NotFound",
    "RateLimited",
    "ServerError",
    "TooLarge",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "error_from_response",
]


class InitserveError(Exception):
    """Base of every error this client raises."""


class InvalidSpec(InitserveError, ValueError):
    """A request refused by the client before anything was sent (unknown method or parameter, wrong kind,
    bad shape, dtype, layout or seed). ``field`` is the offending field (dotted path: ``shape.1``,
    ``layers.0.init.weight.std``), ``value`` what was given, ``message`` what is accepted."""

    def __init__(self, field: str, value: Any, message: str) -> None:
        self.field = field
        self.value = value
        self.message = message
        super().__init__(f"{field}={value!r}: {message}")


class TransportError(InitserveError):
    """The service could not be reached or the connection broke, after every retry."""


class IntegrityError(InitserveError):
    """Received bytes do not match what the service announced: a tensor whose SHA-256 differs from the
    manifest's (``name``, ``expected``, ``actual``), or a malformed body."""

    def __init__(self, message: str, *, name: str | None = None, expected: str | None = None,
                 actual: str | None = None) -> None:
        self.name = name
        self.expected = expected
        self.actual = actual
        super().__init__(message)


class APIError(InitserveError):
    """An error answer of the service: the fields of its problem document (``field`` and ``value``: the
    offending request field and what was sent; ``errors``: every validation problem), and its headers."""

    def __init__(self, status: int, detail: str, *, type: str = "about:blank", title: str = "",
                 field: str | None = None, value: Any = None, errors: list[dict[str, Any]] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.field = field
        self.value = value
        self.errors = errors or []
        self.headers = {key.lower(): value for key, value in (headers or {}).items()}
        self.retry_after = parse_retry_after(self.headers.get("retry-after"))
        """Seconds the service asked to wait (``Retry-After``, seconds or HTTP date), else None."""
        super().__init__(detail)

    def __str__(self) -> str:
        return self.detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, field={self.field!r}, detail={self.detail!r})"


class BadRequest(APIError):
    """400."""


class Unauthorized(APIError):
    """401: missing or wrong API key."""


class NotFound(APIError):
    """404: no such path (wrong base URL?)."""


class MethodNotAllowed(APIError):
    """405."""


class TooLarge(APIError):
    """413: over a size limit of the service (elements, JSON answer, dense side, upload, propagation work)."""


class InvalidRequest(APIError):
    """422: the service refused the request (``field`` names what; ``errors`` lists every problem)."""


class RateLimited(APIError):
    """429, after the retries (``retry_after``: the delay the service asked for)."""


class Unavailable(APIError):
    """503, after the retries (``retry_after``: the delay the service asked for)."""


class ServerError(APIError):
    """Any other 5xx (a bug of the service), or a status the client does not expect."""


ERROR_CLASSES: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    405: MethodNotAllowed,
    413: TooLarge,
    422: InvalidRequest,
    429: RateLimited,
    503: Unavailable,
}


def _problem(body: bytes, content_type: str) -> dict[str, Any] | None:
    """The problem document in ``body`` when it is a JSON object (problem+json or plain JSON)."""
    if "json" not in content_type.lower():
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> APIError:
    """The exception for an error answer. Problem documents fill every field; other bodies (a proxy's HTML
    page, plain text, FastAPI's ``{"detail": ...}``) become ``detail`` as text (shortened)."""
    cls = ERROR_CLASSES.get(status, ServerError if status >= 500 else APIError)
    content_type = next((value for key, value in headers.items() if key.lower() == "content-type"), "")
    problem = _problem(body, content_type)
    if problem is not None and isinstance(problem.get("detail"), str):
        errors = problem.get("errors")
        field = problem.get("field")
        return cls(status, problem["detail"], type=str(problem.get("type", "about:blank")),
                   title=str(problem.get("title", "")), field=field if isinstance(field, str) else None,
                   value=problem.get("value"), errors=errors if isinstance(errors, list) else None, headers=headers)
    text = body.decode("utf-8", errors="replace").strip()
    if len(text) > 500:
        text = text[:500] + "…"
    detail = f"HTTP {status}" + (f": {text}" if text else "")
    return cls(status, detail, title=f"HTTP {status}", headers=headers)
