"""The compiled kernel's SIMD builds and its float32 / float64 output: the same bytes, always.

The kernel's hot loop is compiled for baseline x86-64 and for AVX2 (``_kernel.simd_builds()``
lists those this CPU runs); ``INITSERVE_SIMD`` picks one at import, ``set_simd`` switches.
It writes float32 or float64 straight into the output array: those must be the float64
values rounded, exactly as ``astype`` rounds them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from initserve.core import resolve, stream
from initserve.core.distributions import Normal, TruncatedNormal, Uniform
from initserve.core.plans import Sampled
from initserve.testing import CPU_FEATURE_SETTINGS

from .digests import SPECS, digests
from .test_golden import GOLDEN_DIGESTS

pytestmark = pytest.mark.skipif(stream.kernel is None, reason="compiled kernel not built")

ROOT = Path(__file__).parents[2]
ELEMENTWISE = {method for method, params, shape in SPECS
               if isinstance(resolve(method, shape, **params).plan, Sampled)}  # type: ignore[arg-type]
LAWS = [
    Uniform(-0.3, 0.7),
    Normal(0.1, 0.9),
    TruncatedNormal(0.0, 1.0, -2.0, 1.0),
    TruncatedNormal(0.0, 1.0, 6.0, 7.0),  # mirrored; t below e^-25 (the far E/F formula) and above
    TruncatedNormal(0.0, 1.0, -40.0, -38.0),  # p subnormal: the logarithm's scaled path
]


def elementwise(result: dict[str, str]) -> dict[str, str]:
    return {key: digest for key, digest in result.items() if key.split("/")[0] in ELEMENTWISE}


@pytest.fixture(params=stream.kernel.simd_builds() if stream.kernel else [])
def build(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each build this CPU supports, in turn; the one in use before is restored after."""
    assert stream.kernel is not None
    previous = stream.kernel.simd()
    stream.kernel.set_simd(request.param)
    yield request.param
    stream.kernel.set_simd(previous)


def test_the_builds() -> None:
    assert stream.kernel is not None
    builds = stream.kernel.simd_builds()
    assert builds[0] == "baseline" and set(builds) <= {"baseline", "avx2"}
    assert stream.kernel.simd() in builds
    with pytest.raises(ValueError, match="unknown build"):
        stream.kernel.set_simd("bogus")


def test_every_build_gives_the_golden_digests(build: str) -> None:
    assert ELEMENTWISE >= {"uniform", "normal", "trunc_normal", "xavier_uniform", "kaiming_normal"}
    assert elementwise(digests()) == elementwise(GOLDEN_DIGESTS)


@pytest.mark.parametrize("law", LAWS, ids=repr)
def test_every_build_equals_the_numpy_reference(build: str, law: Uniform | Normal | TruncatedNormal) -> None:
    """Odd starts and lengths, short gathered runs and long tiled ones, in both output types."""
    assert stream.kernel is not None
    key = stream.derive_key(11, "simd.weight")
    kind, params = law.kernel_args()
    for length, starts in [(1, [5]), (3, [0, 7, 2**40 + 1]), (700, [3, 4096 + 2]), (513, [1]), (2500, [2**33 + 3])]:
        starts_u64 = np.array(starts, np.uint64)
        reference = np.concatenate([law.sample(stream.reference_words(key, s, length)) for s in starts])
        for dtype in (np.float64, np.float32):
            out = np.empty(len(starts) * length, dtype)
            stream.kernel.fill_runs(out, kind, key[0], key[1], starts_u64, length, params)
            assert out.tobytes() == reference.astype(dtype).tobytes(), (length, starts, dtype)


def run_digests(env: dict[str, str]) -> dict[str, object]:
    script = ("import json; from initserve.core import stream; from tests.core.digests import digests; "
              "print(json.dumps({'simd': stream.kernel.simd(), 'digests': digests()}))")
    out = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_a_baseline_process_without_avx2_gives_the_golden_digests() -> None:
    """INITSERVE_SIMD=baseline, with numpy's AVX2 / AVX-512 kernels disabled too."""
    result = run_digests({"INITSERVE_SIMD": "baseline", **CPU_FEATURE_SETTINGS["baseline (no avx2/avx512)"]})
    assert result["simd"] == "baseline"
    assert elementwise(result["digests"]) == elementwise(GOLDEN_DIGESTS)  # type: ignore[arg-type]


def test_a_bad_initserve_simd_fails_the_import() -> None:
    """A ValueError, not an ImportError that would silently fall back to the numpy reference."""
    out = subprocess.run([sys.executable, "-c", "import initserve.core"], env={**os.environ, "INITSERVE_SIMD": "bogus"},
                         capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "ValueError: INITSERVE_SIMD=bogus: unknown build" in out.stderr


@pytest.mark.parametrize("layout", ["torch", "keras"])
@pytest.mark.parametrize("method,params", [("normal", {"mean": 0.5, "std": 2.0}), ("uniform", {}),
                                           ("trunc_normal", {"low": -1.0, "high": 3.0})])
def test_float32_is_the_float64_values_rounded(method: str, params: dict[str, float], layout: str) -> None:
    """Random boxes (odd sizes, non-contiguous windows, keras layout's short runs) of the direct float32 output."""
    rng = np.random.default_rng(8)
    for _ in range(12):
        shape = tuple(int(n) for n in rng.integers(1, 40, size=int(rng.integers(1, 5))))
        if rng.random() < 0.3:
            shape = (int(rng.integers(600, 2000)), *shape[1:])
        box = tuple((int(a), int(b) + 1) for a, b in (sorted(rng.integers(0, n, size=2)) for n in shape))
        seed = int(rng.integers(2**32))
        single, double = (resolve(method, list(shape), dtype=dtype, layout=layout, seed=seed, **params)  # type: ignore[arg-type]
                          for dtype in ("float32", "float64"))
        assert single.region(box).tobytes() == double.region(box).astype(np.float32).tobytes(), (shape, box)


def test_fill_runs_refuses_other_outputs() -> None:
    assert stream.kernel is not None
    kind, params = Normal(0.0, 1.0).kernel_args()
    starts = np.zeros(2, np.uint64)
    for out in (np.empty(10, np.float16), np.empty(9), np.empty(20)[::2]):
        with pytest.raises((ValueError, BufferError)):
            stream.kernel.fill_runs(out, kind, 1, 2, starts, 5, params)
