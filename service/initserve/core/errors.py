"""Domain errors raised by the numerics core.

The core never knows HTTP. It raises :class:`SpecError` (the request describes
something that cannot be generated) or :class:`WorkLimit` (a computation over
a configured budget), carrying the offending field and value; the API layer
maps them to 4xx answers in one table. Anything else escaping the
core is a bug and must surface as a 500.
"""

from __future__ import annotations

from initserve.errors import FieldError


class SpecError(FieldError):
    """A tensor specification that cannot be honoured.

    ``field`` names the parameter (e.g. ``shape``, ``std``), ``value`` is what
    the caller sent, ``message`` explains what is accepted.
    """


class WorkLimit(FieldError):
    """A request whose computation would exceed a configured budget (refused before the work)."""
