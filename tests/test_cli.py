"""The ``initserve`` command line."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from initserve import cli, supervisor


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


def replace_runners(monkeypatch, runner: Any) -> None:
    """Replace both ways ``initserve serve`` runs uvicorn (one worker: ``uvicorn.run``; several:
    :func:`initserve.supervisor.run_workers`) with ``runner(*args, **kwargs)``: no server starts."""
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", runner)
    monkeypatch.setattr(supervisor, "run_workers", runner)


@pytest.fixture
def uvicorn_calls(monkeypatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    replace_runners(monkeypatch, lambda *args, **kwargs: calls.append((args, kwargs)))
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


def test_several_workers_run_under_the_supervisor_that_stops_listening_at_sigterm(monkeypatch):
    import uvicorn

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(("uvicorn.run", args, kwargs)))
    monkeypatch.setattr(supervisor, "run_workers", lambda *args, **kwargs: calls.append(("run_workers", args, kwargs)))
    cli.main(["serve", "--workers", "1"])
    cli.main(["serve", "--workers", "2"])
    assert [(runner, args, kwargs["workers"]) for runner, args, kwargs in calls] == [
        ("uvicorn.run", (cli.APP_FACTORY,), 1), ("run_workers", (cli.APP_FACTORY,), 2)]
    assert {**calls[0][2], "workers": 2} == calls[1][2]  # the same options otherwise


def test_run_workers_binds_the_socket_and_runs_the_draining_supervisor(monkeypatch):
    from initserve.testing import free_port

    port = free_port()
    seen: list[tuple[Any, list[socket.socket]]] = []

    class Supervisor:  # uvicorn's would install signal handlers in the test process and start workers
        def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
            seen.append((config, sockets))

        def run(self) -> None:
            ((_, (sock,)),) = seen
            assert sock.getsockname() == ("127.0.0.1", port)  # bound (the workers make it listen)

    monkeypatch.setattr(supervisor, "DrainingMultiprocess", Supervisor)
    supervisor.run_workers(cli.APP_FACTORY, factory=True, host="127.0.0.1", port=port, workers=2,
                           timeout_graceful_shutdown=7, log_config=None)
    ((config, (sock,)),) = seen
    assert (config.app, config.factory, config.workers, config.timeout_graceful_shutdown) == (
        cli.APP_FACTORY, True, 2, 7)
    assert sock.fileno() == -1  # closed at exit


def test_the_supervisor_closes_its_listening_socket_before_it_signals_the_workers():
    """Else the socket keeps listening, with nobody to accept, until the supervisor exits."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        signalled_with: list[int] = []

        class Worker:
            def terminate(self) -> None:
                signalled_with.append(sock.fileno())

        draining = supervisor.DrainingMultiprocess.__new__(supervisor.DrainingMultiprocess)  # no signal handlers
        draining.sockets = [sock]
        draining.processes = [Worker(), Worker()]  # type: ignore[list-item]
        draining.terminate_all()
        assert signalled_with == [-1, -1]


def test_uvicorn_still_terminates_the_workers_through_terminate_all():
    """:class:`~initserve.supervisor.DrainingMultiprocess` hooks ``terminate_all``, which uvicorn's
    ``Multiprocess.run`` calls when it stops (uvicorn 0.30 to 0.54 at least)."""
    import inspect

    from uvicorn.supervisors import Multiprocess

    assert "self.terminate_all()" in inspect.getsource(Multiprocess.run)


def test_factory_path_names_the_real_factory():
    from initserve.api.app import create_app

    module, _, name = cli.APP_FACTORY.partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is create_app


def test_several_workers_share_a_fresh_metrics_directory_removed_at_exit(monkeypatch):
    """uvicorn spawns workers that inherit the environment: PROMETHEUS_MULTIPROC_DIR must be set before."""
    import os


    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    seen: list[str | None] = []

    def run(*args: Any, **kwargs: Any) -> None:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        assert directory is not None and os.path.isdir(directory) and not os.listdir(directory)
        seen.append(directory)

    replace_runners(monkeypatch, run)
    cli.main(["serve", "--workers", "2"])
    (directory,) = seen
    assert directory is not None and not os.path.exists(directory)
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_one_worker_or_a_users_directory_is_left_alone(monkeypatch, tmp_path):
    import os


    seen: list[str | None] = []
    replace_runners(monkeypatch, lambda *args, **kwargs: seen.append(os.environ.get("PROMETHEUS_MULTIPROC_DIR")))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    cli.main(["serve", "--workers", "1"])
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    cli.main(["serve", "--workers", "4"])
    assert seen == [None, str(tmp_path)]
    assert tmp_path.is_dir()
