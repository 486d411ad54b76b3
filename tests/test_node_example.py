"""examples/node/fetch_tensor.mjs, run with the machine's node against a live ``initserve serve``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from initserve.core import resolve
from initserve.testing import free_port, live_server

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "node" / "fetch_tensor.mjs"
NODE = shutil.which("node")


def _node_major() -> int:
    if NODE is None:
        return 0
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=False).stdout
    found = re.match(r"v(\d+)", version)
    return int(found.group(1)) if found else 0


pytestmark = pytest.mark.skipif(_node_major() < 18, reason="needs node >= 18 (global fetch) on PATH")


@pytest.fixture(scope="module")
def node_server() -> Iterator[str]:
    """A real server process on a free port."""
    with live_server() as url:
        yield url


def run_node(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    return subprocess.run([NODE, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, check=False)


def expectations(values: list[float], indices: list[int]) -> list[str]:
    """``--expect i=v`` arguments; ``repr`` of the float32 widened to float64 is exact."""
    return [item for i in indices for item in ("--expect", f"{i}={values[i]!r}")]


def test_raw_and_json_agree_with_known_values(node_server: str) -> None:
    spec = {"method": "xavier_uniform", "shape": [256, 128], "seed": 1, "name": "fc1.weight"}
    values = [float(x) for x in resolve(**spec).region().ravel()]
    indices = [0, 1, 4097, len(values) - 1]
    result = run_node(node_server, "--method", "xavier_uniform", "--shape", "256,128", "--seed", "1",
                      "--name", "fc1.weight", *expectations(values, indices))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "raw:  shape [256, 128] float32, 32768 values" in result.stdout
    assert "json: shape [256, 128] float32, 32768 values" in result.stdout
    assert "raw and json agree on all 32768 values" in result.stdout
    for i in indices:
        assert f"expect[{i}] = {values[i]!r}: ok" in result.stdout
    assert result.stdout.rstrip().endswith("OK")
    assert result.stderr == ""


def test_parameters_huge_seed_and_environment(node_server: str) -> None:
    seed = 2**64 - 1  # beyond JS's exact integers: the script must send it digit for digit
    spec = {"method": "kaiming_normal", "shape": [64, 3, 3, 3], "seed": seed, "nonlinearity": "tanh",
            "mode": "fan_out"}
    values = [float(x) for x in resolve(**spec).region().ravel()]
    expect = ",".join(f"{i}={values[i]!r}" for i in (0, 17, len(values) - 1))
    result = run_node("--method", "kaiming_normal", "--shape", "64,3,3,3", "--seed", str(seed),
                      "--param", "nonlinearity=tanh", "--param", "mode=fan_out",
                      env={"INITSERVE_URL": node_server, "INITSERVE_EXPECT": expect})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "raw and json agree on all 1728 values" in result.stdout
    assert result.stdout.count(": ok") == 3


def test_a_wrong_expected_value_fails(node_server: str) -> None:
    values = [float(x) for x in resolve("normal", [4, 4], seed=3).region().ravel()]
    wrong = float(values[5]) + 1e-6  # another float32
    result = run_node(node_server, "--method", "normal", "--shape", "4,4", "--seed", "3",
                      "--expect", f"0={values[0]!r}", "--expect", f"5={wrong!r}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "expect[0]" in result.stdout and "MISMATCH expect[5]" in result.stderr
    assert "OK" not in result.stdout.split()


def test_an_index_out_of_range_fails(node_server: str) -> None:
    result = run_node(node_server, "--method", "zeros", "--shape", "2,2", "--expect", "4=0")
    assert result.returncode == 1
    assert "index out of range" in result.stderr


def test_server_errors_and_bad_arguments(node_server: str) -> None:
    unknown = run_node(node_server, "--method", "nope", "--shape", "2,2")
    assert unknown.returncode == 1
    assert "HTTP 422" in unknown.stderr and 'method="nope"' in unknown.stderr
    refused = run_node(f"http://127.0.0.1:{free_port()}")
    assert refused.returncode == 1 and "fetch failed" in refused.stderr
    assert run_node(node_server, "--shape", "2,x").returncode == 2
    assert run_node(node_server, "--expect", "zero=1").returncode == 2
