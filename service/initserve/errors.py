"""The base of initserve's domain errors: a request field, its value, what is accepted.

Each layer raises its own subclass — ``core.SpecError`` (the spec cannot be
generated), ``formats.FormatError`` (the format cannot carry it),
``api.errors.TooLarge`` (over a size limit) — and ``api/errors.py`` maps them
to HTTP answers in one table. Errors that are not a :class:`FieldError` are
bugs and surface as 500.
"""

from __future__ import annotations

from typing import Any


class FieldError(Exception):
    """A request that names ``field`` with ``value`` cannot be served; ``message`` says why."""

    def __init__(self, field: str, value: Any, message: str) -> None:
        super().__init__(f"{field}={value!r}: {message}")
        self.field = field
        self.value = value
        self.message = message
