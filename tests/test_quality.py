"""The code stays typed and linted: mypy --strict on the package, ruff on everything."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def test_mypy_strict_on_the_package() -> None:
    pytest.importorskip("mypy")
    result = run(sys.executable, "-m", "mypy", "service")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_on_code_tests_and_bench() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed")
    result = run(ruff, "check", "service", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr
