"""Range, If-Range and If-None-Match on tensor and model answers (RFC 9110 §13, §14)."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save

from initserve.api import Settings, create_app
from initserve.api.conditional import byte_range
from initserve.core import Tensor, resolve

from .cases import TestClient

TENSOR = {"method": "normal", "shape": [300, 7], "seed": 3, "name": "w"}
MODEL = {"layers": [{"type": "linear", "in_features": 10, "out_features": 6}, {"type": "batch_norm1d",
                                                                                   "num_features": 6}]}


@pytest.mark.parametrize("header, length, expected", [
    ("bytes=0-9", 100, (0, 10)),
    ("bytes=90-", 100, (90, 100)),
    ("bytes=90-200", 100, (90, 100)),
    ("bytes=-10", 100, (90, 100)),
    ("bytes=-200", 100, (0, 100)),
    ("bytes = 5 - 6", 100, (5, 7)),
    ("bytes=100-", 100, False),
    ("bytes=-0", 100, False),
    ("bytes=0-0", 0, False),
    ("bytes=-5", 0, False),
    ("bytes=5-2", 100, None),
    ("bytes=0-1,4-5", 100, None),
    ("items=0-1", 100, None),
    ("bytes=-", 100, None),
    ("bytes=a-b", 100, None),
])
def test_byte_range_parsing(header: str, length: int, expected: Any) -> None:
    assert byte_range(header, length) == expected


def _answers(client: TestClient, fmt: str, headers: dict[str, str] | None = None) -> Any:
    if fmt.startswith("model-"):
        return client.post(f"/v1/model?format={fmt[6:]}", json=MODEL, headers=headers or {})
    return client.post(f"/v1/tensor?format={fmt}", json=TENSOR, headers=headers or {})


BINARY = ["npy", "safetensors", "raw", "model-safetensors", "model-npz"]


@pytest.mark.parametrize("fmt", BINARY)
def test_every_range_is_the_slice_of_the_whole_body(client: TestClient, fmt: str) -> None:
    full = _answers(client, fmt)
    assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes"
    length = len(full.content)
    for header, (start, stop) in [("bytes=0-0", (0, 1)), ("bytes=0-99", (0, 100)), ("bytes=7-150", (7, 151)),
                                  (f"bytes={length - 5}-", (length - 5, length)), ("bytes=-33", (length - 33, length)),
                                  (f"bytes=100-{length * 2}", (100, length))]:
        part = _answers(client, fmt, {"Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {start}-{stop - 1}/{length}"
        assert int(part.headers["content-length"]) == stop - start == len(part.content)
        assert part.content == full.content[start:stop], header
        assert part.headers["etag"] == full.headers["etag"]


@pytest.mark.parametrize("fmt", BINARY)
def test_unsatisfiable_range_is_416_with_the_length(client: TestClient, fmt: str) -> None:
    length = len(_answers(client, fmt).content)
    response = _answers(client, fmt, {"Range": f"bytes={length}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{length}"
    problem = response.json()
    assert problem["status"] == 416 and problem["field"] == "Range" and problem["value"] == f"bytes={length}-"


@pytest.mark.parametrize("header", ["bytes=0-1,4-5", "bytes=9-3", "pages=1-2", "bytes=x-"])
def test_ranges_we_do_not_serve_give_the_whole_body(client: TestClient, header: str) -> None:
    full = _answers(client, "npy")
    response = _answers(client, "npy", {"Range": header})
    assert response.status_code == 200 and response.content == full.content


def test_if_range_honours_the_range_only_for_the_current_etag(client: TestClient) -> None:
    full = _answers(client, "raw")
    same = _answers(client, "raw", {"Range": "bytes=0-3", "If-Range": full.headers["etag"]})
    assert same.status_code == 206 and same.content == full.content[:4]
    other = _answers(client, "raw", {"Range": "bytes=0-3", "If-Range": '"an-old-etag"'})
    assert other.status_code == 200 and other.content == full.content


def test_json_answers_ignore_ranges(client: TestClient) -> None:
    spec = {**TENSOR, "shape": [30, 7]}
    response = client.post("/v1/tensor?format=json", json=spec, headers={"Range": "bytes=0-3"})
    assert response.status_code == 200 and "accept-ranges" not in response.headers
    assert response.json()["shape"] == [30, 7]


def test_if_none_match_is_304_for_get_and_412_for_post(client: TestClient) -> None:
    query = "/v1/tensor?method=normal&shape=300,7&seed=3&name=w&format=npy"
    fresh = client.get(query)
    etag = fresh.headers["etag"]
    for tags in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        cached = client.get(query, headers={"If-None-Match": tags})
        assert cached.status_code == 304 and cached.content == b"", tags
        assert cached.headers["etag"] == etag and cached.headers["cache-control"] == fresh.headers["cache-control"]
    assert client.get(query, headers={"If-None-Match": '"other"'}).status_code == 200
    posted = client.post("/v1/tensor?format=npy", json=TENSOR, headers={"If-None-Match": etag})
    assert posted.status_code == 412
    model = client.post("/v1/model", json=MODEL)
    assert client.post("/v1/model", json=MODEL, headers={"If-None-Match": model.headers["etag"]}).status_code == 412


def test_a_safetensors_header_reads_with_two_small_ranges(client: TestClient) -> None:
    """As remote safetensors readers do: 8 bytes of length, then the header, then one tensor's bytes."""
    length = struct.unpack("<Q", _answers(client, "model-safetensors", {"Range": "bytes=0-7"}).content)[0]
    header = json.loads(_answers(client, "model-safetensors", {"Range": f"bytes=8-{8 + length - 1}"}).content)
    begin, end = header["0.weight"]["data_offsets"]
    data = _answers(client, "model-safetensors", {"Range": f"bytes={8 + length + begin}-{8 + length + end - 1}"})
    whole = load_safetensors(_answers(client, "model-safetensors").content)
    np.testing.assert_array_equal(np.frombuffer(data.content, "<f4").reshape(header["0.weight"]["shape"]),
                                  whole["0.weight"])


def test_a_range_generates_only_what_it_covers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last kibibyte of a 4 GiB virtual tensor: only its 256 elements are generated."""
    generated: list[int] = []
    original = Tensor.iter_flat

    def counting(self: Tensor, start: int = 0, stop: int | None = None, chunk: int = 1 << 20) -> Any:
        generated.append((self.numel if stop is None else stop) - start)
        return original(self, start, stop, chunk)

    monkeypatch.setattr(Tensor, "iter_flat", counting)
    with TestClient(create_app(Settings(max_elements=1 << 30))) as client:
        query = "/v1/tensor?method=normal&shape=1073741824&format=raw"
        response = client.get(query, headers={"Range": "bytes=-1024"})
        assert response.status_code == 206 and len(response.content) == 1024
        assert generated == [256]
    n = 1 << 30
    tail = resolve("normal", [n]).take(np.arange(n - 256, n))
    assert response.content == tail.astype("<f4").tobytes()


def test_head_answers_the_headers_and_generates_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    generated: list[int] = []
    monkeypatch.setattr(Tensor, "iter_flat", lambda self, *args, **kwargs: generated.append(1))
    with TestClient(create_app(Settings(max_elements=1 << 30))) as client:
        query = "/v1/tensor?method=normal&shape=1073741824&format=raw"
        head = client.head(query)
        assert head.status_code == 200 and head.content == b"" and generated == []
        assert head.headers["content-length"] == str(4 << 30)
        assert "&dtype=float32&format=raw&" in head.headers["content-location"]
        partial = client.head(query, headers={"Range": "bytes=-1024"})
        assert partial.status_code == 206 and partial.headers["content-length"] == "1024"
        assert partial.headers["content-range"] == f"bytes {(4 << 30) - 1024}-{(4 << 30) - 1}/{4 << 30}"
        assert client.head(query, headers={"If-None-Match": head.headers["etag"]}).status_code == 304
        assert generated == []


def test_no_etag_means_no_304(client: TestClient) -> None:
    """Answers with a checkpoint carry no ETag, so If-None-Match cannot skip them."""
    checkpoint = save({"0.bias": np.zeros(6, np.float32)})
    files = {"checkpoint": ("c.safetensors", checkpoint)}
    response = client.post("/v1/model", data={"model": json.dumps(MODEL)}, files=files, headers={"If-None-Match": "*"})
    assert response.status_code == 200 and "etag" not in response.headers
    assert not load_safetensors(response.content)["0.bias"].any()
