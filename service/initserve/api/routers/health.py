"""Operations endpoints."""

from __future__ import annotations

from fastapi import APIRouter

from initserve.api.schemas import Health
from initserve.core import ALGORITHM_VERSION

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> Health:
    """The process answers; reports the generator's algorithm version."""
    return Health(status="ok", algorithm_version=ALGORITHM_VERSION)
