"""The package surface: encode() dispatch, __all__, and isolation from the web and numerics layers."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy

from initserve import formats
from initserve.formats import FORMATS, FormatError, encode


def test_all_names_exist():
    assert sorted(formats.__all__) == sorted(set(formats.__all__))
    for name in formats.__all__:
        assert hasattr(formats, name), name


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_carries_the_same_values(make_source, collect, values, fmt):
    array = values((4, 6), "float32")
    data = collect(encode(make_source(array), fmt, {"algorithm_version": "1"}))
    if fmt == "npy":
        restored = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    elif fmt == "safetensors":
        restored = safetensors.numpy.load(data)["w"]
    elif fmt == "json":
        restored = np.array(json.loads(data)["data"], dtype=np.float64).astype("<f4")
    else:
        restored = np.frombuffer(data, dtype="<f4")
    assert restored.reshape(-1).tobytes() == array.tobytes()


def test_safetensors_metadata_merges_source_metadata_and_extra(make_source, collect, values, tmp_path):
    source = make_source(values((2,), "float32"), metadata={"spec": "{}", "algorithm_version": "0"})
    path = tmp_path / "w.safetensors"
    path.write_bytes(collect(encode(source, "safetensors", {"algorithm_version": "1", "seed": 7})))
    with safetensors.safe_open(str(path), framework="numpy") as handle:
        assert handle.metadata() == {"spec": "{}", "algorithm_version": "1", "seed": "7"}


def test_unknown_format_is_a_format_error(make_source, values):
    with pytest.raises(FormatError) as caught:
        encode(make_source(values((2,), "float32")), "csv", {})  # type: ignore[arg-type]
    assert caught.value.field == "format"
    assert caught.value.value == "csv"


def test_formats_imports_neither_web_frameworks_nor_the_core():
    code = "import sys, initserve.formats; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    )
    assert "initserve.formats.safetensors" in loaded  # the probe really imported the package
    forbidden = {"fastapi", "starlette", "pydantic", "initserve.core"}
    assert not {name for name in loaded if name.split(".")[0] in forbidden or name.startswith("initserve.core")}
