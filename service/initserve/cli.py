"""The ``initserve`` command line.

``initserve serve [--host HOST] [--port PORT] [--workers N]`` runs the HTTP
service under uvicorn (factory ``initserve.api.app:create_app``). Unset
options fall back to ``INITSERVE_HOST`` / ``INITSERVE_PORT`` /
``INITSERVE_WORKERS``, then to 127.0.0.1, 8000 and 1. Limits are read by the
app itself from ``INITSERVE_MAX_ELEMENTS``, ``INITSERVE_MAX_JSON_ELEMENTS`` and
``INITSERVE_MAX_DENSE_SIDE``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

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


def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Run uvicorn on the app factory."""
    import uvicorn

    from initserve.api.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host if host is not None else settings.host,
        port=port if port is not None else settings.port,
        workers=workers if workers is not None else settings.workers,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``initserve`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        serve(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
