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
    from initserve.api.observability import logging_config

    assert uvicorn_calls == [
        (("initserve.api.app:create_app",), {"factory": True, "host": "127.0.0.1", "port": 8000, "workers": 1,
                                              "access_log": False, "timeout_graceful_shutdown": 30.0,
                                              "log_config": logging_config()})
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


def test_several_workers_share_a_fresh_metrics_directory_removed_at_exit(monkeypatch):
    """uvicorn spawns workers that inherit the environment: PROMETHEUS_MULTIPROC_DIR must be set before."""
    import os

    import uvicorn

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    seen: list[str | None] = []

    def run(*args: Any, **kwargs: Any) -> None:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        assert directory is not None and os.path.isdir(directory) and not os.listdir(directory)
        seen.append(directory)

    monkeypatch.setattr(uvicorn, "run", run)
    cli.main(["serve", "--workers", "2"])
    (directory,) = seen
    assert directory is not None and not os.path.exists(directory)
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_one_worker_or_a_users_directory_is_left_alone(monkeypatch, tmp_path):
    import os

    import uvicorn

    seen: list[str | None] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.append(os.environ.get("PROMETHEUS_MULTIPROC_DIR")))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    cli.main(["serve", "--workers", "1"])
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    cli.main(["serve", "--workers", "4"])
    assert seen == [None, str(tmp_path)]
    assert tmp_path.is_dir()
