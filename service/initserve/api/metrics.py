"""Prometheus metrics of the service (served at ``/metrics``).

Every module records into these objects; none keeps counters of its own. Label values are
bounded sets (route templates, status codes, reasons), never user input.

- ``initserve_requests_total{route, method, status}`` and
  ``initserve_request_duration_seconds{route, method}`` (until the last byte is sent);
- ``initserve_generated_bytes_total{route}``: bytes of answers streamed to clients;
- ``initserve_generations_in_flight``: requests holding part of the memory budget;
- ``initserve_memory_budget_used_bytes``: their estimated working memory;
- ``initserve_rejections_total{reason}``: requests refused, by :data:`Reason`.

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` makes prometheus-client keep the
values in files there, summed at scrape time (gauges: ``livesum``, live processes only).
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import Counter, Gauge, Histogram

Reason = Literal["unauthorized", "rate_limited", "too_large", "invalid", "overloaded", "timeout", "disconnected"]
"""Why a request was refused or stopped: 401, 429, 413, 4xx validation, 503 budget, time limit, client gone."""

REQUESTS = Counter("initserve_requests", "HTTP requests answered", ["route", "method", "status"])
DURATION = Histogram(
    "initserve_request_duration_seconds", "time from request to last byte sent", ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
GENERATED_BYTES = Counter("initserve_generated_bytes", "bytes of generated answers sent to clients", ["route"])
IN_FLIGHT = Gauge("initserve_generations_in_flight", "requests holding part of the memory budget",
                  multiprocess_mode="livesum")
BUDGET_USED = Gauge("initserve_memory_budget_used_bytes", "estimated working memory of requests in generation",
                    multiprocess_mode="livesum")
REJECTIONS = Counter("initserve_rejections", "requests refused or stopped, by reason", ["reason"])


def rejected(reason: Reason) -> None:
    """Count one request refused or stopped for ``reason``."""
    REJECTIONS.labels(reason=reason).inc()
