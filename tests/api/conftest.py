"""Fixtures for the HTTP tests: an app with small limits and a test client on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from initserve.api import Settings, create_app
from initserve.core import Tensor

from .cases import SMALL, TestClient


@pytest.fixture
def settings() -> Settings:
    return SMALL


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def no_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to compute values fails the request loudly (limits must be checked first)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("values were generated before the size check")

    monkeypatch.setattr(Tensor, "iter_flat", refuse)
    monkeypatch.setattr(Tensor, "region", refuse)
