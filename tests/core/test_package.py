"""The core's public surface and its boundary: numpy only, no web framework."""

from __future__ import annotations

import subprocess
import sys

from initserve import core


def test_all_names_exist_and_are_exported() -> None:
    assert sorted(core.__all__) == sorted(set(core.__all__))
    for name in core.__all__:
        assert hasattr(core, name), name


def test_core_never_imports_web_frameworks() -> None:
    code = (
        "import sys, initserve.core, initserve.core.methods, initserve.core.tensor;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'pydantic')];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_every_method_is_in_the_catalogue_with_aliases() -> None:
    names = {m.name for m in core.METHODS}
    assert names == {
        "zeros", "ones", "constant", "uniform", "normal", "trunc_normal", "xavier_uniform", "xavier_normal",
        "kaiming_uniform", "kaiming_normal", "lecun_uniform", "lecun_normal", "variance_scaling", "orthogonal",
        "sparse", "eye", "dirac", "delta_orthogonal",
    }
    aliases = {a: m.name for m in core.METHODS for a in m.aliases}
    assert aliases == {
        "random_uniform": "uniform", "random_normal": "normal", "truncated_normal": "trunc_normal",
        "glorot_uniform": "xavier_uniform", "glorot_normal": "xavier_normal", "he_uniform": "kaiming_uniform",
        "he_normal": "kaiming_normal", "identity": "eye",
    }
