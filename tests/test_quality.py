"""The code stays typed and linted: mypy --strict on the packages (service and Python client), ruff on everything."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "python"  # its own pyproject.toml configures mypy and ruff for it


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def test_mypy_strict_on_the_package() -> None:
    pytest.importorskip("mypy")
    result = run(sys.executable, "-m", "mypy", "service")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_on_code_tests_and_bench() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed")
    result = run(ruff, "check", "service", "tests", "bench", *(["clients/python"] if CLIENT.is_dir() else []))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_client() -> None:
    pytest.importorskip("mypy")
    if not CLIENT.is_dir():
        pytest.skip("no Python client")
    assert (CLIENT / "initserve_client" / "py.typed").is_file()
    result = run(sys.executable, "-m", "mypy", "--strict", "initserve_client", cwd=CLIENT)
    assert result.returncode == 0, result.stdout + result.stderr
