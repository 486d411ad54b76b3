"""``initserve serve --workers N`` (N > 1): uvicorn's multiprocess supervisor, but one that lets go
of the listening socket when shutdown begins, so that new connections are refused during the drain.

Why: uvicorn binds the socket in the supervisor and hands the workers copies of its file descriptor
(one socket, several holders: it listens while any of them keeps it open). On SIGTERM the
supervisor signals the workers, each closes its copy first thing and drains its answers in flight,
but the supervisor keeps its own copy until it exits: the socket goes on listening, the kernel
queues new connections that nobody will ever accept, and resets them at exit — clients hang for up
to ``INITSERVE_SHUTDOWN_TIMEOUT`` seconds. :class:`DrainingMultiprocess` closes the supervisor's
copy just before it signals the workers; once they have closed theirs too (the first step of
uvicorn's server shutdown, within its 0.1 s tick), the socket is gone and connections are refused
(``ECONNREFUSED``), as with one worker.

It closes rather than ``shutdown()``-s the socket: on Linux ``shutdown(SHUT_RD)`` stops a listening
socket for every holder at once, but a worker whose event loop still watches it then gets
``EINVAL`` from ``accept()`` in a busy loop (asyncio logs a traceback each time) until its own
shutdown starts.

Written against uvicorn 0.54 (``uvicorn.supervisors.Multiprocess``: ``run()`` leaves its signal loop
on SIGTERM / SIGINT, then calls ``terminate_all()`` and ``join_all()``; the same since 0.30). The
supervisor handles signals every 0.5 s (``should_exit.wait(0.5)``), so the socket closes within about
0.6 s of SIGTERM; connections made before are served as usual.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess


class DrainingMultiprocess(Multiprocess):
    """uvicorn's :class:`~uvicorn.supervisors.Multiprocess` that closes its listening sockets when
    it starts stopping the workers (it needs them only to start workers, which it no longer does)."""

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().terminate_all()


def run_workers(app: str, **options: Any) -> None:
    """What ``uvicorn.run(app, workers=N, **options)`` does for N > 1, with :class:`DrainingMultiprocess`."""
    config = uvicorn.Config(app, **options)
    sock = config.bind_socket()
    try:
        DrainingMultiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:  # as uvicorn.run
        pass
    finally:
        sock.close()
