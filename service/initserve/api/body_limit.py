"""Request body limits, enforced before the app reads the body (pure ASGI, so nothing is buffered beyond them).

- Form bodies (``multipart/form-data``, ``application/x-www-form-urlencoded``: checkpoint uploads to
  /v1/model) may reach ``max_upload_bytes``; the model route counts them as they stream to disk.
- Every other body (JSON specs and models) may reach ``max_json_bytes``: FastAPI and pydantic hold a JSON
  body and its parsed objects in memory whole, so its limit is small (10,000 layers are about 1 MiB).

A ``Content-Length`` over the limit is a 413 before a byte is read. A chunked JSON body is read up to the
limit (at most ``max_json_bytes`` in memory) and refused as soon as it passes it; otherwise the app gets it
as it came. The 413 names the field ``body``, the length, and the setting to raise.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from initserve.api.errors import PROBLEMS, Described, TooLarge, problem_answer
from initserve.api.settings import Settings

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class BodyLimit:
    """ASGI middleware refusing request bodies over the limits of ``settings`` with a 413 problem."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        upload = headers.get("content-type", "").startswith(FORM_TYPES)
        limit, setting = ((self.settings.max_upload_bytes, "INITSERVE_MAX_UPLOAD_BYTES") if upload
                          else (self.settings.max_json_bytes, "INITSERVE_MAX_JSON_BYTES"))
        length = headers.get("content-length")
        if length is not None and length.isdigit():
            if int(length) > limit:
                await _refuse(int(length), limit, setting, scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server delivers no more than Content-Length
            return
        if upload or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)  # uploads are counted by their route as they stream
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body was complete
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await _refuse(size, limit, setting, scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(size: int, limit: int, setting: str, scope: Scope, receive: Receive, send: Send) -> None:
    problem = PROBLEMS[TooLarge]  # the same 413 as every other size limit
    described = Described("body", size, f"request body over {limit} bytes ({setting})")
    await problem_answer(problem.status, problem.slug, problem.title, described)(scope, receive, send)
