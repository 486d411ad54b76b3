"""Cooperative time limits: long computations call :func:`check` and stop once the caller's time is up.

The API layer runs each piece of generation under :func:`limit` (a context variable, so it follows the
code into ``anyio.to_thread`` workers, which copy the context, and never leaks into other requests);
the core calls :func:`check` where stopping is cheap and safe: between streamed chunks
(:meth:`~initserve.core.Tensor.iter_flat`), between the blocks of reflectors of the
orthogonal construction (:mod:`initserve.core.linalg`), between the layers of a propagation. Outside
:func:`limit`, :func:`check` does nothing: the core alone has no time limit.

Threads of the generation pool (:mod:`initserve.core.plans`) do not see the limit: they work on
blocks of 2^16 elements that end in milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from initserve.errors import FieldError

_LIMIT: ContextVar[tuple[float, float] | None] = ContextVar("initserve_deadline", default=None)


class DeadlineExceeded(FieldError):
    """The computation ran past its time limit (``value``: the limit in seconds)."""


@contextmanager
def limit(at: float, seconds: float) -> Iterator[None]:
    """Run the block with a time limit: :func:`check` raises once ``time.monotonic()`` passes ``at``.

    ``seconds`` is the configured limit, reported in the error.
    """
    token = _LIMIT.set((at, seconds))
    try:
        yield
    finally:
        _LIMIT.reset(token)


def check() -> None:
    """Raise :class:`DeadlineExceeded` if the current time limit has passed (nothing without a limit)."""
    current = _LIMIT.get()
    if current is not None and time.monotonic() > current[0]:
        raise DeadlineExceeded("request_timeout", current[1], f"the request needed more than {current[1]:g} s of "
                               "generation (INITSERVE_REQUEST_TIMEOUT); retry later, or ask for less")
