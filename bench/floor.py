"""The framework's floor: a bare FastAPI app, served by uvicorn as ``initserve serve`` serves, whose
``GET /v1/tensor`` answers bytes computed once at start-up.

What a request costs there is what FastAPI, Starlette and uvicorn cost by themselves (parsing, routing,
the threadpool hop of a sync endpoint, the response): the serving benchmark (:mod:`bench.serving`)
compares initserve's small-tensor latency with it. ``python -m bench.floor --port P --shape 64,64
--seed S`` serves it; :class:`FloorProcess` starts and stops that process the way
:class:`initserve.testing.ServerProcess` does ``initserve serve``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response

from initserve.core import resolve
from initserve.testing import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


def tensor_bytes(method: str, shape: tuple[int, ...], seed: int) -> bytes:
    """The raw little-endian float32 bytes initserve serves for this tensor (``format=raw``)."""
    return resolve(method, list(shape), seed=seed).region().astype("<f4").tobytes()


def create_app(body: bytes) -> FastAPI:
    """A FastAPI app answering ``GET /v1/tensor`` (any query) with ``body`` and ``GET /healthz`` with 200.

    The endpoint is a sync function, as initserve's is: FastAPI runs it in its threadpool."""
    app = FastAPI()

    @app.get("/v1/tensor")
    def tensor() -> Response:
        return Response(body, media_type="application/octet-stream")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b"ok")

    return app


class FloorProcess(ServerProcess):
    """``python -m bench.floor`` on a free port, waited for and stopped like :class:`ServerProcess`."""

    def __init__(self, method: str, shape: tuple[int, ...], seed: int) -> None:
        super().__init__()
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), self.env.get("PYTHONPATH")]))  # bench
        self.arguments = ["--method", method, "--shape", ",".join(map(str, shape)), "--seed", str(seed)]

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.floor", "--port", str(self.port), *self.arguments]


def main() -> None:
    """Serve the floor app on 127.0.0.1 with uvicorn's defaults and ``initserve serve``'s settings (one worker,
    uvicorn's access log off)."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--method", default="normal")
    parser.add_argument("--shape", default="64,64")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    body = tensor_bytes(args.method, tuple(int(n) for n in args.shape.split(",")), args.seed)
    uvicorn.run(create_app(body), host="127.0.0.1", port=args.port, workers=1, access_log=False,
                log_level="warning")


if __name__ == "__main__":
    main()
