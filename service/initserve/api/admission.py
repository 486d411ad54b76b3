"""Admission control: a memory budget per process, a generation time limit, and streams that always end.

**Memory budget.** Every generating request (``/v1/tensor``, ``/v1/model`` with or without checkpoint,
``/v1/stats``, ``/v1/stats/propagation``) estimates its peak working memory once its size limits have
passed and before any work (:mod:`.estimates`, from measurements), and asks the app's
:class:`MemoryBudget` (``INITSERVE_MEMORY_BUDGET`` bytes) for it:

- granted at once when it fits next to what the requests in progress hold;
- otherwise refused at once, **503** ``overloaded`` with ``Retry-After: INITSERVE_RETRY_AFTER``: no queue,
  so memory never grows with the load, and the client (or its load balancer) decides where to retry;
- a request whose estimate exceeds the whole budget could never run: **413** ``too-large``, field
  ``memory_budget`` (never a 503 forever).

The grant is released exactly once (:meth:`Grant.release` is idempotent): when a computed answer
(statistics, a manifest, a 304, a HEAD, a body that its first chunk holds whole) has been made, or — for a
streamed answer — when its last byte
has been handed to the server, the client went away, the time ran out or anything failed; as a last
resort when the unsent response is garbage-collected. The budget is per worker process (each worker
has its own app): ``workers × INITSERVE_MEMORY_BUDGET`` bounds the whole server. ``0`` turns the
budget off. ``initserve_generations_in_flight`` and ``initserve_memory_budget_used_bytes`` follow it.

**Time limit.** A request may spend ``INITSERVE_REQUEST_TIMEOUT`` seconds *generating*: the route's
work before the answer starts, then each streamed chunk, summed (:class:`GenerationClock`, checked
cooperatively by :mod:`initserve.core.deadline` in the core's loops). Time spent waiting for the client
to read does not count — a slow download is not cut — but a client that does not accept one chunk
within the same number of seconds is taken for gone. Before the answer starts, running out is a
**503** ``timeout`` with ``Retry-After`` (503, not 504: 504 says an *upstream* server timed out, which
is what a proxy in front of initserve answers for its own timeouts; here this server is busy, and a
retry later may succeed — clients retry 503s). A whole-matrix tensor (orthogonal …) is built before
its answer starts, so its long computation ends in that 503 too, and so is the first chunk of every
streamed body (in the route's own thread). After the headers went out the
stream stops and the connection is closed: the body is shorter than ``Content-Length`` says, which
every HTTP client reports as an error.

**Streaming.** After the first chunk, each is generated in a worker thread while the one before it is
being sent — generating and sending overlap — and handed over when the response asks for it: at most one
chunk waits ready ahead of the one being sent, besides the one in generation (:class:`_Chunks`).

**Disconnects.** Starlette stops a streamed answer when the client goes away (it cancels the stream
once the server reports the disconnect); each chunk is generated in a worker thread that is not
abandoned, so generation stops after the chunk in progress (≤ 2^20 elements). :class:`AdmittedResponse`
then closes the chunk generator (its ``finally`` clauses run), releases the grant and runs the
response's background task, whatever way the stream ended. Reasons ``overloaded``, ``timeout`` and
``disconnected`` are counted in ``initserve_rejections_total`` here (413s by the observability layer).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from initserve.api.errors import Overloaded, TooLarge
from initserve.api.metrics import BUDGET_USED, IN_FLIGHT, rejected
from initserve.api.settings import Settings
from initserve.core import deadline
from initserve.core.deadline import DeadlineExceeded
from initserve.formats import Chunk

T = TypeVar("T")
MiB = 1 << 20


def _mib(nbytes: int) -> str:
    return f"{nbytes / MiB:.1f} MiB"


class Grant:
    """Bytes granted by a :class:`MemoryBudget` to one request, until :meth:`release`."""

    def __init__(self, budget: MemoryBudget, nbytes: int) -> None:
        self.budget = budget
        self.nbytes = nbytes
        self.released = False

    def release(self) -> None:
        """Give the bytes back (only the first call does anything)."""
        self.budget._release(self)


class MemoryBudget:
    """Bytes of working memory the requests in generation may hold at once, in one process (thread-safe)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity  # 0: no budget
        self.used = 0
        self.in_flight = 0
        self._lock = threading.Lock()

    def acquire(self, nbytes: int, retry_after: int) -> Grant:
        """Grant ``nbytes`` now, or raise :class:`TooLarge` (never fits) or :class:`Overloaded` (not now)."""
        if self.capacity and nbytes > self.capacity:
            raise TooLarge("memory_budget", nbytes, f"the request needs about {_mib(nbytes)} of working memory, "
                           f"more than the whole budget of {_mib(self.capacity)} (INITSERVE_MEMORY_BUDGET): ask "
                           "for a smaller tensor, a slice or a shard")
        with self._lock:
            fits = not self.capacity or self.used + nbytes <= self.capacity
            if fits:
                self.used += nbytes
                self.in_flight += 1
            held, count = self.used, self.in_flight
        if not fits:
            rejected("overloaded")
            raise Overloaded("memory_budget", nbytes, f"the request needs about {_mib(nbytes)} of working memory; "
                             f"{count} requests in progress hold {_mib(held)} of the {_mib(self.capacity)} budget "
                             f"(INITSERVE_MEMORY_BUDGET): retry in {retry_after} s")
        IN_FLIGHT.inc()
        BUDGET_USED.inc(nbytes)
        return Grant(self, nbytes)

    def _release(self, grant: Grant) -> None:
        with self._lock:
            if grant.released:
                return
            grant.released = True
            self.used -= grant.nbytes
            self.in_flight -= 1
        IN_FLIGHT.dec()
        BUDGET_USED.dec(grant.nbytes)


def budget_of(request: Request) -> MemoryBudget:
    """The memory budget of the app serving ``request`` (``create_app`` makes one per app)."""
    budget: MemoryBudget = request.app.state.budget
    return budget


class GenerationClock:
    """The generation time a request has left: each timed piece of work counts, waiting does not."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.left = seconds

    @contextmanager
    def counting(self) -> Iterator[None]:
        """Time the block, with :func:`initserve.core.deadline.check` raising once the time left is spent."""
        start = time.monotonic()
        try:
            with deadline.limit(start + self.left, self.seconds):
                deadline.check()
                yield
        finally:
            self.left -= time.monotonic() - start

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)``, timed."""
        with self.counting():
            return function(*args)


class Admission:
    """A request admitted to generate: its grant, its clock, and how it hands both to a streamed answer."""

    def __init__(self, grant: Grant, clock: GenerationClock, prepare: Callable[[], None] | None) -> None:
        self.grant = grant
        self.clock = clock
        self.prepare = prepare
        self.handed_over = False

    def streaming(self, chunks: Iterator[Chunk], **kwargs: Any) -> Response:
        """The answer of ``chunks`` (for :func:`~initserve.api.conditional.answer`), which takes the grant over.

        ``prepare`` runs first, then the first chunk is generated, both on the request's clock in the route's own
        thread: the heavy part (a whole matrix) is done, or has timed out as a 503, before the headers go out. A
        body that its first chunk holds whole (its ``Content-Length``) is answered as it is, the grant given back
        at once: nothing is left to generate, and no other thread is needed. A longer one streams as an
        :class:`AdmittedResponse`."""
        if self.prepare is not None:
            self.prepare()
        first = next(chunks, b"")
        self.handed_over = True
        length = Headers(kwargs.get("headers")).get("content-length")
        if length is not None and len(first) >= int(length):
            _close(chunks)
            self.grant.release()
            return Response(first, **kwargs)
        return AdmittedResponse(first, chunks, self.grant, self.clock, **kwargs)


@contextmanager
def admit(request: Request, settings: Settings, estimate: int,
          prepare: Callable[[], None] | None = None) -> Iterator[Admission]:
    """Admit a request needing ``estimate`` bytes (or raise 413/503), and run the block on its clock.

    The grant is released when the block ends, unless an :class:`AdmittedResponse` took it over."""
    grant = budget_of(request).acquire(estimate, settings.retry_after)
    admission = Admission(grant, GenerationClock(settings.request_timeout), prepare)
    try:
        with admission.clock.counting():
            yield admission
    except BaseException as exc:
        if isinstance(exc, DeadlineExceeded):
            rejected("timeout")
        grant.release()
        raise
    if not admission.handed_over:
        grant.release()


def _close(chunks: Iterator[Chunk]) -> None:
    """Run the ``finally`` clauses of a chunk generator (an iterator without ``close`` has none)."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


class AdmittedResponse(StreamingResponse):
    """A streamed answer: ``first`` (its first chunk, already generated), then the rest of ``chunks``, each
    generated in a worker thread on the request's clock while the one before is sent, up to the body's
    ``Content-Length``; on any end — complete, client gone, out of time, failure — it waits for the chunk in
    progress, closes the chunk generator, releases the grant and runs its background task."""

    def __init__(self, first: Chunk, chunks: Iterator[Chunk], grant: Grant, clock: GenerationClock,
                 **kwargs: Any) -> None:
        body = _Chunks(first, chunks, clock)
        super().__init__(body, **kwargs)
        length = self.headers.get("content-length")
        body.length = None if length is None else int(length)
        self.chunks = chunks
        self.grant = grant
        self.clock = clock
        weakref.finalize(self, grant.release)  # a response that is never sent still gives the bytes back

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        background, self.background = self.background, None
        body = self.body_iterator
        assert isinstance(body, _Chunks)

        async def patient_send(message: Message) -> None:
            with anyio.fail_after(self.clock.seconds):  # a client that takes nothing for that long is gone
                await send(message)

        try:
            await body.serve(super().__call__(scope, receive, patient_send))
            if not body.finished:
                rejected("disconnected")
        except (DeadlineExceeded, TimeoutError):
            rejected("timeout")  # headers are out: end without completing, the server closes the connection
        except ClientDisconnect:  # ASGI ≥ 2.4 servers: a send to a closed connection fails
            rejected("disconnected")
        finally:
            _close(self.chunks)
            self.grant.release()
            if background is not None:
                with anyio.CancelScope(shield=True):
                    await background()


class _Chunks:
    """The async body of an :class:`AdmittedResponse`: ``first``, then ``next(chunks)`` in a worker thread, timed,
    one chunk ahead.

    While the response sends chunk *k*, a task generates chunk *k* + 1 and waits to hand it over (a rendezvous:
    never more than one chunk ready ahead), so generation and sending overlap. It stops once ``length`` bytes
    are handed over (``None``: when ``chunks`` ends), without asking ``chunks`` for its end. A failure to
    generate is handed over in place of a chunk and raised to the response."""

    _ahead: MemoryObjectSendStream[Chunk | Exception]  # made by serve(), which the iteration runs within
    _handed: MemoryObjectReceiveStream[Chunk | Exception]

    def __init__(self, first: Chunk, chunks: Iterator[Chunk], clock: GenerationClock) -> None:
        self.chunks = chunks
        self.clock = clock
        self.first: Chunk | None = first  # dropped once handed over
        self.length: int | None = None
        self.finished = False

    async def serve(self, sending: Awaitable[None]) -> None:
        """Await ``sending`` (the response, which iterates this body) while the chunks are generated ahead; then
        stop generating, once the chunk in progress is done (its worker thread is never abandoned)."""
        failure: Exception | None = None
        self._ahead, self._handed = anyio.create_memory_object_stream[Chunk | Exception](0)
        with self._ahead, self._handed:  # closed even if the generating task never started
            async with anyio.create_task_group() as ahead:
                ahead.start_soon(self._generate)
                try:
                    await sending
                except Exception as exc:  # noqa: BLE001 - raised below, once the task group is left
                    failure = exc
                ahead.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _generate(self) -> None:
        with self._ahead:
            chunk, self.first = self.first, None
            handed = 0
            while chunk is not None:
                await self._ahead.send(chunk)
                handed += len(chunk)
                if self.length is not None and handed >= self.length:
                    return
                try:
                    chunk = await anyio.to_thread.run_sync(self.clock.run, next, self.chunks, None)
                except Exception as exc:  # noqa: BLE001 - handed to the response, which raises it
                    await self._ahead.send(exc)
                    return

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> Chunk:
        try:
            chunk = await self._handed.receive()
        except anyio.EndOfStream:
            self.finished = True
            raise StopAsyncIteration from None
        if isinstance(chunk, Exception):
            raise chunk
        return chunk
