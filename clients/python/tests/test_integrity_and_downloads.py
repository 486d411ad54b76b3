"""Tampered bodies against the manifest (IntegrityError), and downloads that never leave half-written files."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from client_cases import LAYERS

from initserve_client import Client
from initserve_client.arrays import parse_safetensors
from initserve_client.calls import model_call
from initserve_client.errors import IntegrityError, InvalidRequest, TransportError
from initserve_client.integrity import RangeHasher, verify_buffer
from initserve_client.specs import model_body

pytest.importorskip("initserve.api", reason="the initserve service package")


def tampering(transport: httpx.BaseTransport, fmt: str, change: Callable[[bytes], bytes]) -> httpx.MockTransport:
    """The service, except that answers of ``/v1/model?format=fmt`` go through ``change``."""

    def handler(request: httpx.Request) -> httpx.Response:
        response = transport.handle_request(request)
        if request.url.path == "/v1/model" and request.url.params.get("format") == fmt:
            content = change(response.read())
            headers = {k: v for k, v in response.headers.items() if k != "content-length"}
            return httpx.Response(response.status_code, headers=headers, content=content)
        return response

    return httpx.MockTransport(handler)


def flip_last_byte(content: bytes) -> bytes:
    return content[:-1] + bytes([content[-1] ^ 1])


def test_tampered_model_is_refused(client: Client, sync_transport: httpx.BaseTransport) -> None:
    with Client("http://initserve.test", transport=tampering(sync_transport, "safetensors", flip_last_byte),
                progress=False) as tampered:
        with pytest.raises(IntegrityError) as error:
            tampered.model(LAYERS)
        assert error.value.name == "fc2.bias" and error.value.expected != error.value.actual
        assert "fc2.bias" in str(error.value)
        unverified = tampered.model(LAYERS, verify=False)  # the caller's choice: nothing checked
    honest = client.model(LAYERS)
    assert unverified["fc2.bias"].tobytes() != honest["fc2.bias"].tobytes()
    assert unverified["fc2.weight"].tobytes() == honest["fc2.weight"].tobytes()


def other_npz(content: bytes) -> bytes:
    """A valid npz with one value changed (the zip's CRCs match: only the manifest can tell)."""
    with np.load(io.BytesIO(content)) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["bn.bias"] = arrays["bn.bias"] + 1
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_manifest_of_another_request_is_refused(sync_transport: httpx.BaseTransport) -> None:
    def other_manifest(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("format") == "manifest":
            request = httpx.Request(request.method, request.url, headers=request.headers,
                                    content=request.content.replace(b'"seed":0', b'"seed":1'))
        return sync_transport.handle_request(request)

    client = Client("http://initserve.test", transport=httpx.MockTransport(other_manifest), progress=False)
    with client, pytest.raises(IntegrityError, match="conv.weight"):
        client.model(LAYERS)


@pytest.mark.parametrize(("fmt", "change"), [
    ("safetensors", flip_last_byte),
    ("safetensors", lambda content: content[:-4]),
    ("npz", other_npz),
    ("json", lambda content: content.replace(b"[0.0", b"[0.5", 1)),
    ("npz", lambda content: b"not a zip"),
])
def test_tampered_download_leaves_no_file(sync_transport: httpx.BaseTransport, tmp_path: Path, fmt: str,
                                          change: Callable[[bytes], bytes]) -> None:
    target = tmp_path / "model.out"
    target.write_bytes(b"previous version")
    client = Client("http://initserve.test", transport=tampering(sync_transport, fmt, change), progress=False)
    with client, pytest.raises(IntegrityError):
        client.download_model(LAYERS, target, format=fmt)
    assert [p.name for p in tmp_path.iterdir()] == ["model.out"] and target.read_bytes() == b"previous version"


def test_failed_downloads_leave_nothing(sync_transport: httpx.BaseTransport, tmp_path: Path,
                                        sleeps: list[float]) -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"\0" * 1000
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    def cut(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-length": "4000"}, stream=Broken())

    with Client("http://initserve.test", transport=httpx.MockTransport(cut), retries=1, progress=False) as client:
        with pytest.raises(TransportError):
            client.download_tensor("normal", [1000], tmp_path / "w.npy")
        with pytest.raises(TransportError):
            client.download_model(LAYERS, tmp_path / "m.safetensors", verify=False)
    assert list(tmp_path.iterdir()) == [] and sleeps == [0.5, 0.5]
    with Client("http://initserve.test", transport=sync_transport, progress=False) as client:
        with pytest.raises(InvalidRequest):
            client.download_model([{"type": "linear", "in_features": 3}], tmp_path / "m.safetensors")
        with pytest.raises(FileNotFoundError):  # a missing directory fails before anything is sent
            client.download_tensor("normal", [4], tmp_path / "missing" / "w.npy")
    assert list(tmp_path.iterdir()) == []

    class Interrupted(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"\0" * 100
            raise KeyboardInterrupt

    def interrupted(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Interrupted())

    client = Client("http://initserve.test", transport=httpx.MockTransport(interrupted), progress=False)
    with client, pytest.raises(KeyboardInterrupt):  # Ctrl-C mid-download: still nothing left
        client.download_tensor("normal", [4], tmp_path / "w.npy")
    assert list(tmp_path.iterdir()) == []


def test_short_or_wrong_body_is_an_integrity_error(sleeps: list[float]) -> None:
    bodies = [b"\0" * 12, b"\0" * 16]

    def short(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"x-initserve-shape": "4", "x-initserve-dtype": "float32"},
                              content=bodies.pop(0))

    with Client("http://initserve.test", transport=httpx.MockTransport(short)) as client:
        with pytest.raises(IntegrityError, match="raw answer of 12 bytes"):
            client.tensor("normal", [4])
        with pytest.raises(IntegrityError, match="asked for a float32 tensor of shape \\[3\\]"):
            client.tensor("normal", [3])


def test_range_hasher_in_any_chunking(client: Client) -> None:
    manifest = client.manifest(LAYERS)
    request = model_body(LAYERS, "torch", "framework", 0, "float32", None)  # as client.manifest sends it
    body = bytes(client._body(model_call(request, "safetensors", None)))
    verify_buffer(manifest, body)
    for size in (1, 7, 64, 1000):
        hasher = RangeHasher(manifest)
        for start in range(0, len(body), size):
            hasher.update(body[start : start + size])
        hasher.finish()
    for tensor in manifest["tensors"]:
        start, end = tensor["byte_range"]
        assert hashlib.sha256(body[start:end]).hexdigest() == tensor["sha256"]
    assert list(parse_safetensors(bytearray(body))) == [tensor["name"] for tensor in manifest["tensors"]]
    hasher = RangeHasher(manifest)
    hasher.update(body[:-1])
    with pytest.raises(IntegrityError):
        hasher.finish()


@pytest.mark.parametrize("content", [b"", b"\x10\0\0\0\0\0\0\0{}", b"\x02\0\0\0\0\0\0\0[]",
                                     b"\x08\0\0\0\0\0\0\0{\"a\":1} ", b"\xff" * 16])
def test_malformed_safetensors(content: bytes) -> None:
    with pytest.raises(IntegrityError, match="malformed safetensors"):
        parse_safetensors(bytearray(content))
