"""Conditional and range requests (RFC 9110 §13 and §14) on encoded bodies.

:func:`answer` turns an :class:`~initserve.formats.EncodedBody` and its headers
into the HTTP answer the request's headers ask for:

- ``If-None-Match`` listing the answer's ETag (or ``*``): 304 Not Modified for
  GET, 412 Precondition Failed for other methods (nothing is generated);
- ``Range: bytes=…`` on a binary answer (``Accept-Ranges: bytes``): one range —
  ``a-b``, ``a-`` or the suffix ``-n`` — is a 206 with ``Content-Range``,
  streaming only that range (the encoders generate only the elements it
  overlaps); a range that starts beyond the end is a 416 with ``Content-Range:
  bytes */length``; several ranges or a malformed header are ignored (200, the
  whole body), as RFC 9110 allows;
- ``If-Range``: the range is honoured only when it carries the answer's strong
  ETag; otherwise the whole body is sent;
- ``HEAD``: the headers GET would get, ``Content-Length`` included, and no body
  (nothing is generated).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.responses import Response, StreamingResponse

from initserve.api.errors import Described, problem_answer
from initserve.formats import EncodedBody

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CARRIED_BY_304 = ("ETag", "Cache-Control", "Content-Location", "X-Initserve-Algorithm-Version")


def _etags(field: str) -> list[str]:
    """The entity tags of an ``If-None-Match``/``If-Range`` value, weak prefixes dropped."""
    return [tag.strip().removeprefix("W/") for tag in field.split(",") if tag.strip()]


def byte_range(header: str, length: int) -> tuple[int, int] | None | bool:
    """``(start, stop)`` of a single satisfiable range; ``False`` if unsatisfiable; ``None`` to ignore it."""
    match = _RANGE.match(header.replace(" ", ""))
    if match is None:
        return None  # malformed, another unit, or several ranges: serve the whole body
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        return (max(length - suffix, 0), length) if suffix and length else False
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= length:
        return False
    stop = min(int(last) + 1, length) if last else length
    return start, stop


def answer(body: EncodedBody, headers: dict[str, str], request: Headers, method: str, *, binary: bool,
           background: BackgroundTask | None = None,
           streaming: Callable[..., Response] = StreamingResponse) -> Response:
    """The 200, 206, 304, 412 or 416 answer to a request with headers ``request`` (see the module docstring).

    ``streaming(chunks, status_code=…, media_type=…, headers=…, background=…)`` makes the answers that
    stream a body (200, 206); the admission control passes its own (:mod:`initserve.api.admission`)."""
    etag = headers.get("ETag")
    if etag and "if-none-match" in request:
        wanted = _etags(request["if-none-match"])
        if "*" in wanted or etag in wanted:
            kept = {name: headers[name] for name in CARRIED_BY_304 if name in headers}
            return Response(status_code=304 if method in ("GET", "HEAD") else 412, headers=kept,
                            background=background)
    headers = {**headers, **body.headers}
    if binary:
        headers["Accept-Ranges"] = "bytes"
    wanted_range = byte_range(request["range"], body.length) if binary and "range" in request else None
    if wanted_range is not None and "if-range" in request and (etag is None or request["if-range"].strip() != etag):
        wanted_range = None
    if wanted_range is False:
        described = Described("Range", request["range"], f"the body has {body.length} bytes")
        return problem_answer(416, "range-not-satisfiable", "Range Not Satisfiable", described,
                              {"Content-Range": f"bytes */{body.length}"})
    if isinstance(wanted_range, tuple):
        start, stop = wanted_range
        status, chunks = 206, body.byte_range(start, stop)
        headers |= {"Content-Range": f"bytes {start}-{stop - 1}/{body.length}", "Content-Length": str(stop - start)}
    else:
        status, chunks = 200, body.chunks
        headers["Content-Length"] = str(body.length)
    if method == "HEAD":
        return Response(status_code=status, media_type=body.media_type, headers=headers, background=background)
    return streaming(chunks, status_code=status, media_type=body.media_type, headers=headers, background=background)
