"""The application factory.

``create_app(settings)`` builds a fresh FastAPI app: settings on ``app.state``
(injected into routes by :data:`~initserve.api.settings.SettingsDep`), the
routers of :data:`~initserve.api.routers.ROUTERS`, and the error handlers of
the one table in :mod:`initserve.api.errors`. Nothing is built at import time;
uvicorn calls the factory (``initserve.api.app:create_app``, ``factory=True``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

import initserve
from initserve.api.access import install_access
from initserve.api.admission import MemoryBudget
from initserve.api.allocator import return_freed_memory
from initserve.api.body_limit import BodyLimit
from initserve.api.errors import install_error_handlers
from initserve.api.observability import install_observability
from initserve.api.routers import ROUTERS, model
from initserve.api.settings import Settings, get_settings

DESCRIPTION = """\
Deterministic, seeded, initialized neural-network weight tensors.

A tensor's bytes are a pure function of its canonical spec (method and parameters,
shape, dtype, layout, seed, name) and of the algorithm version reported in the
`X-Initserve-Algorithm-Version` header. Errors are `application/problem+json`
(RFC 9457) naming the offending `field` and `value`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new initserve app using ``settings`` (default: read from ``INITSERVE_*``)."""
    return_freed_memory()  # process-wide: RSS follows the memory budget (see allocator.py)
    app = FastAPI(title="initserve", version=initserve.__version__, description=DESCRIPTION)
    app.state.settings = settings if settings is not None else get_settings()
    app.state.budget = MemoryBudget(app.state.settings.memory_budget)  # per app, hence per worker process
    for router in ROUTERS:
        app.include_router(router)
    install_error_handlers(app)
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            model.add_request_schemas(default_openapi())
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(BodyLimit, settings=app.state.settings)  # inside access: refused callers send nothing
    install_access(app, app.state.settings)  # API keys, rate limit, CORS outside them (see access.py)
    install_observability(app, app.state.settings.log_format)  # outermost: ids, metrics, access log
    return app
