"""Service settings: one :class:`Settings` class, read from ``INITSERVE_*`` environment variables.

Nothing is built at import time: :func:`get_settings` reads the environment
when called, :func:`initserve.api.app.create_app` stores the result on the app,
and routes receive it through the :data:`SettingsDep` dependency. Tests build
their own ``Settings(...)`` with small limits.
"""

from __future__ import annotations

from typing import Annotated, Literal, cast

from fastapi import Depends, Request
from pydantic import Field, SecretStr
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
        default=4 << 30, ge=0, description="largest form upload body (a checkpoint with its model; else 413)"
    )
    max_json_bytes: int = Field(
        default=16 << 20, ge=0, description="largest request body that is not a form upload (JSON specs and models; "
        "else 413)"
    )
    max_propagation_work: int = Field(
        default=1 << 28, ge=0, description="largest batch × outputs × fan_in of one layer of /v1/stats/propagation "
        "(else 413)"
    )
    max_layers: int = Field(default=10_000, ge=1, le=100_000, description="most layers in one /v1/model, /v1/stats "
                            "or /v1/stats/propagation request (else 413); at most 100 000, the core's own bound")
    memory_budget: int = Field(
        default=1 << 30, ge=0, description="bytes of working memory all requests in generation may hold at once, "
        "by their estimate, per worker process; a request that would exceed it is a 503 with Retry-After, one "
        "larger than the whole budget a 413; 0: no budget")
    retry_after: int = Field(default=1, ge=1, description="seconds a 503 (budget full) asks the client to wait")
    request_timeout: float = Field(default=120.0, gt=0, description="seconds a request may spend generating before "
                                   "it is stopped (503 before the answer starts, a cut connection after); also how "
                                   "long a client may take to accept one chunk of a streamed answer")
    shutdown_timeout: float = Field(default=30.0, ge=0, description="seconds `initserve serve` lets in-flight answers "
                                    "finish after SIGTERM")
    api_keys: SecretStr = Field(default=SecretStr(""), description="comma-separated API keys; when any (or "
                                "api_keys_file) is set, every request but /healthz and /readyz needs "
                                "`Authorization: Bearer <key>` (else 401). A SecretStr: reprs and logs show ***")
    api_keys_file: str = Field(default="", description="file of API keys, one per line ('#' comment lines and blank "
                               "lines ignored); unreadable or empty: the server does not start")
    rate_limit: float = Field(default=0.0, ge=0, description="requests per second per API key (per client address "
                              "without keys), token bucket, per worker process; 0: no limit (else 429)")
    rate_burst: int = Field(default=20, ge=1, description="token bucket size of rate_limit: requests a client may "
                            "send at once after being idle")
    cors_origins: str = Field(default="", description="comma-separated origins allowed by CORS ('*': any); "
                              "empty: CORS off (no Access-Control-* headers)")
    log_format: Literal["json", "text", "off"] = Field(default="json", description="access log lines on stderr")
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
