"""Settings come from ``INITSERVE_*`` when the app is created, never at import."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from initserve.api import Settings, create_app, get_settings

from .cases import TestClient


def test_defaults():
    settings = Settings()
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.max_json_elements < settings.max_elements


def test_environment_is_read_by_get_settings(monkeypatch):
    monkeypatch.setenv("INITSERVE_MAX_ELEMENTS", "100")
    monkeypatch.setenv("INITSERVE_PORT", "9001")
    settings = get_settings()
    assert settings.max_elements == 100 and settings.port == 9001


def test_create_app_without_settings_reads_the_environment(monkeypatch):
    monkeypatch.setenv("INITSERVE_MAX_ELEMENTS", "10")
    with TestClient(create_app()) as client:
        assert client.get("/v1/tensor", params={"method": "zeros", "shape": "10"}).status_code == 200
        assert client.get("/v1/tensor", params={"method": "zeros", "shape": "11"}).status_code == 413


def test_invalid_environment_is_refused(monkeypatch):
    monkeypatch.setenv("INITSERVE_MAX_ELEMENTS", "-1")
    with pytest.raises(ValidationError):
        get_settings()
