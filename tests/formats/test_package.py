"""The package surface: encode() and encode_many() dispatch, __all__, isolation from the web and numerics layers."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy

from initserve import formats
from initserve.formats import FORMATS, MODEL_FORMATS, FormatError, encode, encode_many, encode_npz


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


MODEL = {"enc.0.weight": ((4, 6), "float32"), "enc/0/bias": ((4,), "float64"), "bn.num_batches_tracked": ((), "int64")}


def model_sources(make_source, values):
    return [
        make_source(values(shape, dtype, seed=i), name=name) for i, (name, (shape, dtype)) in enumerate(MODEL.items())
    ]


def read_model(data, fmt):
    """{name: array} from a model document in format ``fmt``."""
    if fmt == "safetensors":
        return safetensors.numpy.load(data)
    if fmt == "npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
            return {name: loaded[name] for name in loaded.files}
    restored = {}
    for tensor in json.loads(data)["tensors"]:
        storage = {"float32": "<f4", "float64": "<f8", "int64": "<i8"}[tensor["dtype"]]
        parsed = np.array(tensor["data"], dtype=storage if storage == "<i8" else np.float64)  # ints stay exact
        restored[tensor["name"]] = parsed.astype(storage).reshape(tensor["shape"])
    return restored


@pytest.mark.parametrize("fmt", MODEL_FORMATS)
def test_every_model_format_carries_the_same_tensors(make_source, collect, values, fmt):
    sources = model_sources(make_source, values)
    restored = read_model(collect(encode_many(sources, fmt, {"algorithm_version": "1"})), fmt)
    assert sorted(restored) == sorted(MODEL)  # the safetensors reader sorts names; order is tested per format
    for source in sources:
        assert restored[source.name].dtype == source.values.dtype
        assert restored[source.name].shape == source.shape
        assert restored[source.name].tobytes() == source.values.tobytes()


def test_model_metadata_per_format(make_source, collect, values, tmp_path):
    sources = model_sources(make_source, values)
    metadata = {"algorithm_version": "1", "model": "mlp"}
    path = tmp_path / "model.safetensors"
    path.write_bytes(collect(encode_many(sources, "safetensors", metadata)))
    with safetensors.safe_open(str(path), framework="numpy") as handle:
        assert handle.metadata() == metadata
    doc = json.loads(collect(encode_many(sources, "json", metadata)))
    assert list(doc) == ["algorithm_version", "model", "tensors"]
    assert doc["model"] == "mlp"
    assert collect(encode_many(sources, "npz", metadata)) == collect(encode_npz(sources))  # ignored by npz


def test_unknown_model_format_is_a_format_error(make_source, values):
    with pytest.raises(FormatError) as caught:
        encode_many(model_sources(make_source, values), "npy", {})  # type: ignore[arg-type]
    assert caught.value.field == "format"
    assert caught.value.value == "npy"
    assert "safetensors, npz, json" in caught.value.message


def test_formats_imports_neither_web_frameworks_nor_the_core():
    code = "import sys, initserve.formats; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    )
    assert "initserve.formats.safetensors" in loaded  # the probe really imported the package
    forbidden = {"fastapi", "starlette", "pydantic", "initserve.core"}
    assert not {name for name in loaded if name.split(".")[0] in forbidden or name.startswith("initserve.core")}
