"""What the sync and async clients share: settings, retry decisions, answer decoding."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np

from initserve_client._retry import RetryPolicy, retryable_status
from initserve_client.arrays import decode, decode_raw, read_layout
from initserve_client.calls import Call
from initserve_client.download import Progress, progress_wanted
from initserve_client.errors import APIError, IntegrityError, TransportError
from initserve_client.integrity import verify_buffer, verify_layout
from initserve_client.specs import TensorSpec, TensorWindow

__version__ = "0.1.0"
USER_AGENT = f"initserve-client/{__version__}"
DEFAULT_TIMEOUT = 60.0
NOT_RETRIED = (httpx.UnsupportedProtocol,)  # a wrong base URL does not get better with time


class ClientBase:
    """Settings of a client (see :class:`initserve_client.Client` for their meaning)."""

    def __init__(self, base_url: str, *, api_key: str | None, timeout: float, retries: int, backoff: float,
                 progress: bool | None) -> None:
        if not isinstance(base_url, str) or not base_url:
            raise ValueError(f"base_url must be a URL such as 'http://127.0.0.1:8000', got {base_url!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        if progress is not None and not isinstance(progress, bool):
            raise ValueError(f"progress must be True, False or None, got {progress!r}")
        self.base_url = base_url
        self.policy = RetryPolicy(retries, backoff)
        self.progress = progress
        self._headers = {"user-agent": USER_AGENT}
        if api_key is not None:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._timeout = httpx.Timeout(float(timeout))

    def _httpx_options(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "headers": self._headers, "timeout": self._timeout}

    def _bar(self, description: str, *, leave: bool) -> Progress:
        return Progress(progress_wanted(self.progress), description, leave=leave)

    def _status_delay(self, error: APIError, attempt: int) -> float:
        """Seconds to wait before retrying after an error answer; raises ``error`` when it is not retried."""
        delay = self.policy.delay(attempt, error.retry_after) if retryable_status(error.status) else None
        if delay is None:
            raise error
        return delay

    def _transport_delay(self, call: Call, exc: httpx.RequestError, attempt: int) -> float:
        """Seconds to wait before retrying after a connection error; raises :class:`TransportError` otherwise."""
        retryable = isinstance(exc, httpx.TransportError) and not isinstance(exc, NOT_RETRIED)
        delay = self.policy.delay(attempt) if retryable else None
        if delay is None:
            tries = f" after {attempt + 1} attempts" if attempt else ""
            raise TransportError(f"{call.endpoint.verb} {self.base_url.rstrip('/')}{call.endpoint.path} failed"
                                 f"{tries}: {type(exc).__name__}: {exc}") from exc
        return delay


def content_length(response: httpx.Response) -> int | None:
    """The announced length of the body as it will be read (unknown when it is compressed)."""
    if response.headers.get("content-encoding", "identity") != "identity":
        return None
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def decode_tensor(buffer: bytearray, headers: Mapping[str, str], spec: TensorSpec,
                  window: TensorWindow | None = None) -> np.ndarray[Any, Any]:
    """A ``format=raw`` answer to ``spec`` (its ``window``), checked against it: dtype, shape (the window's),
    and for a window the box ``X-Initserve-Window`` reports."""
    array = decode_raw(buffer, headers)
    dtype = headers.get("x-initserve-dtype")
    box = None if window is None else window.box(spec.shape)
    shape = tuple(spec.shape) if box is None else tuple(stop - start for start, stop in box)
    if dtype != spec.dtype or array.shape != shape:
        part = "" if box is None else f" (window {[list(pair) for pair in box]} of {list(spec.shape)})"
        raise IntegrityError(f"asked for a {spec.dtype} tensor of shape {list(shape)}{part}, the service sent "
                             f"{dtype} {list(array.shape)}")
    if box is not None and window_header(headers) != box:
        raise IntegrityError(f"asked for the window {[list(pair) for pair in box]} of a tensor of shape "
                             f"{list(spec.shape)}, the service sent {headers.get('x-initserve-window')!r}")
    return array


def window_header(headers: Mapping[str, str]) -> tuple[tuple[int, int], ...] | None:
    """The box of ``X-Initserve-Window`` (``{"box": [[start, stop], …]}``), or None when absent or unreadable."""
    try:
        box = json.loads(headers.get("x-initserve-window", ""))["box"]
        return tuple((int(start), int(stop)) for start, stop in box)
    except (ValueError, KeyError, TypeError):
        return None


def decode_model(buffer: bytearray, manifest: Mapping[str, Any] | None) -> dict[str, np.ndarray[Any, Any]]:
    """The tensors of a safetensors answer in the service's order, checked against ``manifest`` when given."""
    layout = read_layout(buffer, len(buffer))
    if manifest is not None:
        verify_layout(manifest, layout.entries)
        verify_buffer(manifest, buffer)
    return {entry.name: decode(buffer, entry.dtype, entry.shape, entry.start) for entry in layout.entries}

