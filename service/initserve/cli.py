"""The ``initserve`` command line.

``initserve serve [--host HOST] [--port PORT] [--workers N]`` runs the HTTP
service under uvicorn (factory ``initserve.api.app:create_app``). Unset
options fall back to ``INITSERVE_HOST`` / ``INITSERVE_PORT`` /
``INITSERVE_WORKERS``, then to 127.0.0.1, 8000 and 1. Limits are read by the
app itself from ``INITSERVE_MAX_ELEMENTS``, ``INITSERVE_MAX_JSON_ELEMENTS`` and
``INITSERVE_MAX_DENSE_SIDE``.

Logging: uvicorn's own access log is off — the app writes one line per request
on the ``initserve.access`` logger, which the uvicorn logging configuration
given here sends to stderr in every worker. With several workers, they share
one fresh ``PROMETHEUS_MULTIPROC_DIR`` so that ``/metrics`` sums them all
(:func:`initserve.api.observability.metrics_directory`).

SIGTERM stops the server gracefully: it stops accepting connections (they are
refused), lets the answers in flight finish for up to ``INITSERVE_SHUTDOWN_TIMEOUT``
seconds (then cuts them), and exits 0 (Ctrl-C drains the same way). With several
workers, uvicorn's supervisor would keep the listening socket open until the end:
:mod:`initserve.supervisor` runs one that closes it when the drain begins.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence
from types import FrameType
from typing import Any

APP_FACTORY = "initserve.api.app:create_app"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``initserve``."""
    parser = argparse.ArgumentParser(
        prog="initserve", description="Serve deterministic, seeded neural-network weight tensors over HTTP."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the initserve HTTP service with uvicorn. Limits come from INITSERVE_MAX_ELEMENTS, "
        "INITSERVE_MAX_JSON_ELEMENTS and INITSERVE_MAX_DENSE_SIDE.",
        epilog="example: initserve serve --port 8080 && curl 'localhost:8080/v1/tensor?method=normal&shape=4,4'",
    )
    serve.add_argument("--host", help="address to bind (default: $INITSERVE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: $INITSERVE_PORT or 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default: $INITSERVE_WORKERS or 1)")
    return parser


def _stopped(signum: int, frame: FrameType | None) -> None:
    """uvicorn re-raises the SIGTERM it handled once its graceful shutdown is over: exit 0 then."""
    raise SystemExit(0)


def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Run uvicorn on the app factory."""
    import uvicorn

    from initserve.api.access import AccessConfigError, load_api_keys
    from initserve.api.observability import logging_config, metrics_directory
    from initserve.api.settings import get_settings
    from initserve.supervisor import run_workers

    settings = get_settings()
    try:  # once here, with a one-line message, rather than a traceback in every worker
        load_api_keys(settings)
    except AccessConfigError as exc:
        raise SystemExit(f"initserve: {exc}") from None
    workers = workers if workers is not None else settings.workers
    signal.signal(signal.SIGTERM, _stopped)
    options: dict[str, Any] = {
        "factory": True,
        "host": host if host is not None else settings.host,
        "port": port if port is not None else settings.port,
        "workers": workers,
        "access_log": False,  # the app writes one access line per request (initserve.access)
        # SIGTERM: in-flight answers finish, then exit (uvicorn annotates int; asyncio.wait_for takes a float)
        "timeout_graceful_shutdown": settings.shutdown_timeout,
        "log_config": logging_config(),
    }
    with metrics_directory(workers):  # several workers: one PROMETHEUS_MULTIPROC_DIR for all, removed at exit
        if workers > 1:  # uvicorn's supervisor, but one that stops listening when SIGTERM comes
            run_workers(APP_FACTORY, **options)
        else:
            uvicorn.run(APP_FACTORY, **options)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``initserve`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        serve(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
