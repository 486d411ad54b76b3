"""Fixtures for the HTTP tests: an app with small limits and a test client on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from initserve.api import Settings, create_app

from .cases import SMALL, TestClient


@pytest.fixture
def settings() -> Settings:
    return SMALL


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
