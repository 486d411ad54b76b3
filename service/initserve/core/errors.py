"""Domain errors raised by the numerics core.

The core never knows HTTP. It raises :class:`SpecError` (the request describes
something that cannot be generated) carrying the offending field and value;
the API layer maps it to a 4xx answer in one table. Anything else escaping the
core is a bug and must surface as a 500.
"""

from __future__ import annotations

from typing import Any


class SpecError(Exception):
    """A tensor specification that cannot be honoured.

    ``field`` names the parameter (dotted for nested values, e.g. ``shape``),
    ``value`` is what the caller sent, ``message`` explains what is accepted.
    """

    def __init__(self, field: str, value: Any, message: str) -> None:
        super().__init__(f"{field}={value!r}: {message}")
        self.field = field
        self.value = value
        self.message = message
