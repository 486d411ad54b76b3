"""Service settings: one :class:`Settings` class, read from ``INITSERVE_*`` environment variables.

Nothing is built at import time: :func:`get_settings` reads the environment
when called, :func:`initserve.api.app.create_app` stores the result on the app,
and routes receive it through the :data:`SettingsDep` dependency. Tests build
their own ``Settings(...)`` with small limits.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Limits and server options (environment: ``INITSERVE_MAX_ELEMENTS`` etc.)."""

    model_config = SettingsConfigDict(env_prefix="INITSERVE_", frozen=True, extra="ignore")

    max_elements: int = Field(default=1 << 30, ge=0, description="largest tensor served, in elements (else 413)")
    max_json_elements: int = Field(default=1 << 22, ge=0, description="largest tensor served as format=json (else 413)")
    max_dense_side: int = Field(
        default=2048,
        ge=0,
        description="orthogonal, sparse and delta_orthogonal build their whole matrix: "
        "the largest number of rows or columns they accept (else 413)",
    )
    max_model_elements: int = Field(
        default=1 << 31, ge=0, description="largest model served by /v1/model, in elements over all tensors (else 413)"
    )
    max_upload_bytes: int = Field(
        default=4 << 30, ge=0, description="largest request body, checkpoint uploads included (else 413)"
    )
    max_propagation_work: int = Field(
        default=1 << 28, ge=0, description="largest batch × outputs × fan_in of one layer of /v1/stats/propagation "
        "(else 413)"
    )
    host: str = Field(default="127.0.0.1", description="address `initserve serve` binds to")
    port: int = Field(default=8000, ge=0, le=65535, description="port `initserve serve` listens on")
    workers: int = Field(default=1, ge=1, description="worker processes of `initserve serve`")


def get_settings() -> Settings:
    """Settings from the environment (``INITSERVE_*``), read now."""
    return Settings()


async def app_settings(request: Request) -> Settings:
    """The settings the running app was created with."""
    return cast(Settings, request.app.state.settings)


SettingsDep = Annotated[Settings, Depends(app_settings)]
"""Route parameter type that injects the app's :class:`Settings`."""
