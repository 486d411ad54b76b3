"""When to retry and how long to wait: connection errors, 429 and 503 only, never another status.

The delay before retry ``n`` (0-based) is ``backoff · 2**n`` seconds capped at :data:`MAX_BACKOFF`,
unless the answer carries ``Retry-After`` (delta-seconds or an HTTP date), which is honoured as given.
A ``Retry-After`` longer than :data:`MAX_RETRY_AFTER` is not waited for: the error is raised at once
(its ``retry_after`` tells the caller how long the service asked for).

The clients sleep through :func:`sleep` and :func:`async_sleep`, looked up at call time, so tests can
replace them (``monkeypatch.setattr(initserve_client._retry, "sleep", fake)``).
"""

from __future__ import annotations

import email.utils
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

RETRY_STATUSES = frozenset({429, 503})
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 300.0

sleep = time.sleep
async_sleep = anyio.sleep  # asyncio or trio, as httpx


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (``"120"`` or ``"Wed, 21 Oct 2015 07:28:00 GMT"``);
    None when absent or unreadable; 0 for a date in the past."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` further attempts after the first, waiting ``backoff · 2**n`` (capped) between them."""

    retries: int = 3
    backoff: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {self.retries!r}")
        if not math.isfinite(self.backoff) or self.backoff < 0:
            raise ValueError(f"backoff must be a finite number >= 0, got {self.backoff!r}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retrying after failed attempt ``attempt`` (0-based), or None to give up."""
        if attempt >= self.retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= MAX_RETRY_AFTER else None
        return min(self.backoff * 2.0**attempt, MAX_BACKOFF)


def retryable_status(status: int) -> bool:
    """Whether an answer with this status may be retried (429 and 503 only)."""
    return status in RETRY_STATUSES
