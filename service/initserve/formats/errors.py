"""Domain errors raised by the encoders.

:class:`FormatError` means the request asks for an output the format cannot
express (bfloat16 in ``.npy``, an empty or duplicate tensor name in a
safetensors file, non-finite numbers in JSON). Like the core's ``SpecError`` it
carries the offending ``field`` and ``value``; the API maps it to a 4xx answer.
Anything else escaping ``formats/`` (a source yielding the wrong dtype or the
wrong element count, a non-string metadata value) is a bug and stays a plain
exception, so it surfaces as a 500.
"""

from __future__ import annotations

from initserve.errors import FieldError


class FormatError(FieldError):
    """An output format that cannot carry the requested tensor(s).

    ``field`` names the request parameter (``format``, ``name``, ``dtype``),
    ``value`` is what the caller sent, ``message`` says what would work.
    """
