"""Bytes do not depend on the CPU's SIMD level, nor on kernel vs numpy reference.

Each configuration runs in its own process: numpy picks its SIMD kernels at
import, glibc its libm variants at start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from initserve.testing import CPU_FEATURE_SETTINGS

SCRIPT = Path(__file__).with_name("digests.py")


def run(env_extra: dict[str, str], *args: str) -> dict[str, str]:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def default_digests() -> dict[str, str]:
    return run({})


@pytest.mark.parametrize("setting", [k for k in CPU_FEATURE_SETTINGS if k != "default"])
def test_digests_are_identical_across_simd_levels(setting: str, default_digests: dict[str, str]) -> None:
    assert run(CPU_FEATURE_SETTINGS[setting]) == default_digests


@pytest.mark.parametrize("setting", list(CPU_FEATURE_SETTINGS))
def test_numpy_reference_gives_the_kernel_bytes(setting: str, default_digests: dict[str, str]) -> None:
    assert run(CPU_FEATURE_SETTINGS[setting], "reference") == default_digests


def test_every_method_and_dtype_is_covered(default_digests: dict[str, str]) -> None:
    from initserve.core import METHODS

    assert {key.split("/")[0] for key in default_digests} == {m.name for m in METHODS}
    assert len(set(default_digests.values())) > 30  # distinct tensors, not one repeated digest
