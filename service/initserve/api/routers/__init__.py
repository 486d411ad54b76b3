"""The HTTP routes, gathered in one place: :data:`ROUTERS` is what the app mounts."""

from __future__ import annotations

from fastapi import APIRouter

from initserve.api.routers import catalog, health, model, observability, stats, tensor

ROUTERS: tuple[APIRouter, ...] = (tensor.router, model.router, stats.router, catalog.router, health.router,
                                   observability.router)

__all__ = ["ROUTERS"]
