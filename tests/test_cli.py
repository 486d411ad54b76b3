"""The ``initserve`` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from initserve import cli


def test_console_script_serve_help_exits_0():
    script = Path(sys.executable).with_name("initserve")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "initserve.cli"]
    result = subprocess.run([*command, "serve", "--help"], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--workers", "INITSERVE_MAX_ELEMENTS"):
        assert option in result.stdout


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2
    assert "serve" in capsys.readouterr().err


@pytest.fixture
def uvicorn_calls(monkeypatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    import uvicorn

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    return calls


def test_serve_runs_the_app_factory_with_defaults(uvicorn_calls, monkeypatch):
    for name in ("INITSERVE_HOST", "INITSERVE_PORT", "INITSERVE_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    cli.main(["serve"])
    assert uvicorn_calls == [
        (("initserve.api.app:create_app",), {"factory": True, "host": "127.0.0.1", "port": 8000, "workers": 1})
    ]


def test_options_override_the_environment(uvicorn_calls, monkeypatch):
    monkeypatch.setenv("INITSERVE_PORT", "9000")
    monkeypatch.setenv("INITSERVE_HOST", "0.0.0.0")
    cli.main(["serve", "--port", "8123", "--workers", "3"])
    ((_, kwargs),) = uvicorn_calls
    assert (kwargs["host"], kwargs["port"], kwargs["workers"]) == ("0.0.0.0", 8123, 3)


def test_factory_path_names_the_real_factory():
    from initserve.api.app import create_app

    module, _, name = cli.APP_FACTORY.partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is create_app
