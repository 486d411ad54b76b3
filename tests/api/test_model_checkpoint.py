"""``POST /v1/model`` as multipart with a safetensors checkpoint: matching tensors are copied (rounded to
the model's dtype), the others generated exactly as without a checkpoint; mismatches and bad parts are 422."""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from initserve.api import Settings, create_app

from .cases import TestClient
from .model_cases import (
    assert_model_problem,
    bf16_bits,
    build_safetensors,
    header_of,
    linear,
    load_npz,
    read_tensors,
    slices_of,
)

MODEL: dict[str, Any] = {
    "layers": [linear(6, 16), {"type": "batch_norm1d", "num_features": 16}, linear(16, 4)],
    "seed": 21,
}
NAMES = ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
         "2.weight", "2.bias"]
RNG = np.random.default_rng(1234)
W0 = RNG.normal(0, 0.3, size=(16, 6)).astype(np.float32)
B2 = RNG.normal(0, 1.0, size=(4,)).astype(np.float32)
CHECKPOINT = {"0.weight": W0, "2.bias": B2, "1.num_batches_tracked": np.array(7, dtype=np.int64),
              "classifier.weight": np.ones((3, 3), np.float32)}
COPIED = ["0.weight", "1.num_batches_tracked", "2.bias"]


def post(client: TestClient, model: dict[str, Any], checkpoint: bytes | None, **params: str) -> Any:
    files = {"checkpoint": ("ck.safetensors", checkpoint, "application/octet-stream")} if checkpoint is not None else None
    return client.post("/v1/model", params=params, data={"model": json.dumps(model)}, files=files)


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response


def test_matching_tensors_are_copied_the_others_generated(client):
    plain = ok(client.post("/v1/model", json=MODEL))
    response = ok(post(client, MODEL, save_safetensors(CHECKPOINT)))
    header, _ = header_of(response.content)
    assert [name for name in header if name != "__metadata__"] == NAMES
    assert json.loads(header["__metadata__"]["initserve.checkpoint_copied"]) == COPIED
    assert json.loads(header["__metadata__"]["initserve.model"]) == MODEL
    tensors = load_safetensors(response.content)
    assert tensors["0.weight"].dtype == np.float32
    np.testing.assert_array_equal(tensors["0.weight"], W0)
    np.testing.assert_array_equal(tensors["2.bias"], B2)
    counter = tensors["1.num_batches_tracked"]
    assert counter.dtype == np.int64 and counter.shape == () and counter == 7
    assert "classifier.weight" not in tensors
    generated, fresh = slices_of(response.content), slices_of(plain.content)
    for name in NAMES:
        if name not in COPIED:
            assert generated[name] == fresh[name], name


def test_checkpoint_answer_in_every_format(client):
    checkpoint = save_safetensors(CHECKPOINT)
    reference = load_safetensors(ok(post(client, MODEL, checkpoint)).content)
    arrays = load_npz(ok(post(client, MODEL, checkpoint, format="npz")).content)
    assert list(arrays) == NAMES
    for name, array in arrays.items():
        np.testing.assert_array_equal(array, reference[name])
    assert arrays["1.num_batches_tracked"].dtype == np.int64
    body = ok(post(client, MODEL, checkpoint, format="json")).json()
    for entry in body["tensors"]:
        want = reference[entry["name"]]
        np.testing.assert_array_equal(np.asarray(entry["data"], np.float64).astype(want.dtype), want.ravel())


def test_manifest_reports_and_hashes_the_checkpoint_tensors(client):
    checkpoint = save_safetensors(CHECKPOINT)
    manifest = ok(post(client, MODEL, checkpoint, format="manifest")).json()
    content = ok(post(client, MODEL, checkpoint)).content
    assert manifest["checkpoint"] == {"copied": COPIED, "mismatched": [], "unused": ["classifier.weight"]}
    assert manifest["safetensors_length"] == len(content)
    for entry in manifest["tensors"]:
        begin, end = entry["byte_range"]
        assert hashlib.sha256(content[begin:end]).hexdigest() == entry["sha256"], entry["name"]
        if entry["name"] in COPIED:
            assert entry["init"] == {"source": "checkpoint"}
        else:
            assert entry["init"]["source"] in ("framework default", "scheme") and "spec" in entry["init"]
    assert {entry["name"]: entry["role"] for entry in manifest["tensors"]}["1.num_batches_tracked"] == "state"


@pytest.mark.parametrize("dtype", ["float16", "float64", "bfloat16"])
def test_float32_checkpoint_is_rounded_to_the_model_dtype(client, dtype):
    model = {**MODEL, "dtype": dtype}
    tensors = read_tensors(ok(post(client, model, save_safetensors(CHECKPOINT))).content)
    want = {
        "float16": W0.astype(np.float16),
        "float64": W0.astype(np.float64),
        "bfloat16": bf16_bits(W0),
    }[dtype]
    assert tensors["0.weight"].dtype == want.dtype
    np.testing.assert_array_equal(tensors["0.weight"], want)
    assert tensors["1.num_batches_tracked"].dtype == np.int64 and tensors["1.num_batches_tracked"] == 7


def test_float16_values_round_to_nearest_even(client):
    """Halfway cases between two float16 values: numpy's astype(float16) of the float32 value."""
    ulp = np.float32(2.0**-10)  # float16 spacing in [1, 2)
    halfway = (1 + np.arange(16 * 6, dtype=np.float32) * ulp + ulp / 2).astype(np.float32).reshape(16, 6)
    model = {**MODEL, "dtype": "float16"}
    tensors = read_tensors(ok(post(client, model, save_safetensors({"0.weight": halfway}))).content)
    np.testing.assert_array_equal(tensors["0.weight"], halfway.astype(np.float16))
    assert len(np.unique(tensors["0.weight"].view(np.uint16) & 1)) == 1  # ties went to even


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_bfloat16_checkpoint_input(client, dtype):
    bits = bf16_bits(W0)
    checkpoint = build_safetensors({"0.weight": ("BF16", [16, 6], bits.tobytes())})
    tensors = read_tensors(ok(post(client, {**MODEL, "dtype": dtype}, checkpoint)).content)
    widened = (bits.astype(np.uint32) << 16).view(np.float32)
    want = {"float32": widened, "bfloat16": bits, "float16": widened.astype(np.float16)}[dtype]
    np.testing.assert_array_equal(tensors["0.weight"], want)


def test_checkpoint_with_a_tensor_subset(client):
    response = ok(post(client, MODEL, save_safetensors(CHECKPOINT), tensors="2.bias,0.bias,0.weight"))
    tensors = load_safetensors(response.content)
    assert [name for name in header_of(response.content)[0] if name != "__metadata__"] == ["0.weight", "0.bias",
                                                                                           "2.bias"]
    np.testing.assert_array_equal(tensors["0.weight"], W0)
    np.testing.assert_array_equal(tensors["2.bias"], B2)


def test_shape_mismatch_is_a_422_naming_the_tensor(client):
    checkpoint = save_safetensors({**CHECKPOINT, "2.weight": np.zeros((16, 4), np.float32)})  # model: (4, 16)
    problem = assert_model_problem(post(client, MODEL, checkpoint), 422, "checkpoint", "2.weight")
    assert "[16, 4]" in problem["detail"] and "[4, 16]" in problem["detail"] and "strict=false" in problem["detail"]


def test_dtype_mismatch_is_a_422_naming_the_tensor(client):
    checkpoint = save_safetensors({"1.num_batches_tracked": np.array(1.0, np.float32)})
    assert_model_problem(post(client, MODEL, checkpoint), 422, "checkpoint", "1.num_batches_tracked")
    checkpoint = save_safetensors({"0.bias": np.zeros(16, np.int64)})
    assert_model_problem(post(client, MODEL, checkpoint), 422, "checkpoint", "0.bias")


def test_strict_false_generates_mismatched_tensors_and_reports_them(client):
    checkpoint = save_safetensors(
        {**CHECKPOINT, "2.weight": np.zeros((16, 4), np.float32), "1.num_batches_tracked": np.array(1.0, np.float32)}
    )
    manifest = ok(post(client, MODEL, checkpoint, strict="false", format="manifest")).json()
    assert manifest["checkpoint"] == {
        "copied": ["0.weight", "2.bias"],
        "mismatched": ["1.num_batches_tracked", "2.weight"],
        "unused": ["classifier.weight"],
    }
    content = ok(post(client, MODEL, checkpoint, strict="false")).content
    fresh = slices_of(ok(client.post("/v1/model", json=MODEL)).content)
    got = slices_of(content)
    assert got["2.weight"] == fresh["2.weight"] and got["1.num_batches_tracked"] == fresh["1.num_batches_tracked"]
    np.testing.assert_array_equal(load_safetensors(content)["0.weight"], W0)


def with_header(header: bytes, data_bytes: int = 0) -> bytes:
    """A file of this header text (verbatim) and ``data_bytes`` zero bytes of data."""
    return struct.pack("<Q", len(header)) + header + b"\x00" * data_bytes


@pytest.mark.parametrize(
    "checkpoint",
    [
        b"garbage!garbage!",
        b"",
        b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!",
        build_safetensors({"0.weight": ("F32", [16, 6], b"\x00" * 8)}),  # data shorter than the shape
        build_safetensors({"0.weight": ("I8", [2], b"\x00\x00")}),  # unreadable dtype
        # found by fuzzing the checkpoint header (test_fuzz): these were 500s
        with_header(b'{"0.weight": {"dtype": [], "shape": [2], "data_offsets": [0, 8]}}', 8),  # unhashable dtype
        with_header(b'{"0.weight": {"dtype": {}, "shape": [2], "data_offsets": [0, 8]}}', 8),
        with_header(b"[" * 2000 + b"]" * 2000),  # nested too deep for json.loads
        with_header(b'{"0.weight": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 0]}}'),
        build_safetensors({"0.weight": ("F32", [True, 6], b"\x00" * 24)}),  # a boolean is no dimension
    ],
    ids=["garbage", "empty", "header not JSON", "short data", "int8", "list dtype", "object dtype", "deep header",
         "5000-digit dimension", "boolean dimension"],
)
def test_unreadable_checkpoint_is_a_422(client, checkpoint):
    assert_model_problem(post(client, MODEL, checkpoint), 422, "checkpoint")


def test_multipart_problems_name_the_part(client):
    checkpoint = save_safetensors(CHECKPOINT)
    files = {"checkpoint": ("ck.safetensors", checkpoint, "application/octet-stream")}
    assert_model_problem(client.post("/v1/model", data={"modle": "{}"}, files=files), 422, "model", None)
    assert_model_problem(client.post("/v1/model", data={"model": "{layers"}, files=files), 422, "model", None)
    invalid = {"layers": [{"type": "linear", "in_features": 3}]}
    assert_model_problem(post(client, invalid, checkpoint), 422, "model.layers.0.out_features", None)


def test_checkpoint_sent_as_text_is_a_422_naming_checkpoint(client):
    as_text = client.post("/v1/model", data={"model": json.dumps(MODEL), "checkpoint": "0.weight"})
    assert_model_problem(as_text, 422, "checkpoint")


def test_multipart_without_a_checkpoint_equals_json(client):
    plain = ok(client.post("/v1/model", json=MODEL))
    form = ok(client.post("/v1/model", data={"model": json.dumps(MODEL)}, files={"unused": ("x", b"")}))
    assert form.content == plain.content
    assert form.headers["etag"] == plain.headers["etag"]


def test_cache_headers_only_without_a_checkpoint(client):
    plain = ok(client.post("/v1/model", json=MODEL))
    assert plain.headers["etag"].startswith('"') and plain.headers["cache-control"].endswith("immutable")
    for fmt in ("safetensors", "manifest"):
        with_checkpoint = ok(post(client, MODEL, save_safetensors(CHECKPOINT), format=fmt))
        assert "etag" not in with_checkpoint.headers and "cache-control" not in with_checkpoint.headers
        assert with_checkpoint.headers["x-initserve-algorithm-version"] == plain.headers["x-initserve-algorithm-version"]


def test_checkpoint_over_max_upload_bytes_is_413():
    checkpoint = save_safetensors({"0.weight": np.zeros((16, 6), np.float32)})
    with TestClient(create_app(Settings(max_upload_bytes=len(checkpoint)))) as client:
        problem = assert_model_problem(post(client, MODEL, checkpoint), 413, "body")
    assert problem["value"] > len(checkpoint) and "INITSERVE_MAX_UPLOAD_BYTES" in problem["detail"]


def test_limits_apply_before_the_checkpoint_is_read(client):
    """A model over a limit is refused even when the checkpoint is unreadable: nothing is read first."""
    big = {"layers": [linear(300, 300)]}
    assert_model_problem(post(client, big, b"garbage!garbage!"), 413, "layers.0", [300, 300])
