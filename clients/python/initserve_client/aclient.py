"""The asynchronous client: :class:`~initserve_client.Client`'s methods, awaited."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, Unpack

import httpx
import numpy as np

from initserve_client import _retry
from initserve_client._base import DEFAULT_TIMEOUT, ClientBase, content_length, decode_model, decode_tensor
from initserve_client.calls import (
    Call,
    fans_call,
    gain_call,
    gain_value,
    json_object,
    methods_call,
    methods_list,
    model_call,
    propagation_call,
    stats_body,
    stats_call,
    tensor_call,
)
from initserve_client.catalog import Framework, Layout, MethodName, ModelDType, ModelFormat, Nonlinearity, TensorFormat
from initserve_client.download import AtomicFile, BufferSink, FileSink, Sink
from initserve_client.errors import InvalidSpec, error_from_response
from initserve_client.integrity import RangeHasher, verify_file
from initserve_client.specs import (
    Scheme,
    Shard,
    Slice,
    TensorParams,
    TensorSpec,
    check_path,
    model_body,
    propagation_body,
    tensor_names,
    tensor_spec,
    tensor_window,
)

Array = np.ndarray[Any, Any]


class AsyncClient(ClientBase):
    """An asyncio connection to an initserve service (anyio: trio too): the settings and methods of
    :class:`~initserve_client.Client`, awaited. Downloads write their file from the event loop, chunk by chunk.

    ``base_url``: the service (``http://127.0.0.1:8000``); ``api_key``: sent as ``Authorization: Bearer``;
    ``timeout``: seconds for each of connect, read and write; ``retries``: further attempts after connection
    errors, 429 and 503 (never other statuses), waiting ``backoff · 2**n`` seconds (≤ 30) or the answer's
    ``Retry-After``; ``transport``: an httpx transport (tests: ``httpx.MockTransport``); ``progress``: draw
    tqdm bars for downloads (None: when stderr is a terminal).

    Use as a context manager, or call :meth:`close`. Methods raise :class:`~initserve_client.errors.InvalidSpec`
    before sending anything invalid, and the other errors of :mod:`initserve_client.errors` after.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = 3, backoff: float = 0.5, transport: httpx.AsyncBaseTransport | None = None,
                 progress: bool | None = None) -> None:
        super().__init__(base_url, api_key=api_key, timeout=timeout, retries=retries, backoff=backoff,
                         progress=progress)
        self._http = httpx.AsyncClient(transport=transport, **self._httpx_options())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # --- one request, with retries ----------------------------------------------------------------------

    async def _perform(self, call: Call, sink: Sink) -> httpx.Headers:
        """Send ``call``, retrying as the policy says, and stream the successful body into ``sink``."""
        attempt = 0
        while True:
            try:
                async with self._http.stream(call.endpoint.verb, call.endpoint.path, params=call.query,
                                       content=call.content, headers=call.headers) as response:
                    if response.is_success:
                        sink.begin(content_length(response))
                        async for chunk in response.aiter_bytes():
                            sink.write(chunk)
                        sink.end()
                        return response.headers
                    error = error_from_response(response.status_code, response.headers, await response.aread())
                delay = self._status_delay(error, attempt)
            except httpx.RequestError as exc:
                delay = self._transport_delay(call, exc, attempt)
            await _retry.async_sleep(delay)
            attempt += 1

    async def _bytes(self, call: Call) -> tuple[bytearray, httpx.Headers]:
        sink = BufferSink()
        headers = await self._perform(call, sink)
        return sink.buffer, headers

    async def _body(self, call: Call) -> bytearray:
        return (await self._bytes(call))[0]

    async def _download(self, call: Call, path: str | os.PathLike[str], hasher: RangeHasher | None = None,
                  manifest: Mapping[str, Any] | None = None) -> Path:
        bar = self._bar(Path(path).name, leave=True)
        try:
            with AtomicFile(path) as file:
                await self._perform(call, FileSink(file, hasher, bar))
                if manifest is not None:
                    verify_file(manifest, call.query["format"], file.temporary)
                return file.commit()
        finally:
            bar.close()

    # --- tensors ----------------------------------------------------------------------------------------

    async def tensor(self, method: MethodName | TensorSpec, shape: Sequence[int] | None = None, *,
               slice: Slice | None = None, shard: Shard | None = None, **params: Unpack[TensorParams]) -> Array:
        """One tensor as a numpy array (``POST /v1/tensor?format=raw``): a method (or alias), a shape and the
        common fields and method parameters as keywords, or a :class:`TensorSpec` alone. bfloat16 comes back
        as ``ml_dtypes.bfloat16``, or float32 with the same values without ml_dtypes.

        ``slice`` (``[(start, stop), …]`` per leading dimension) and/or ``shard`` (``{"dim", "index", "count"}``
        or ``(dim, index, count)``, ``torch.tensor_split`` semantics, taken within the slice) answer only that
        part of the tensor, in its shape; the ``count`` shards concatenate along ``dim`` to the whole tensor."""
        spec = tensor_spec(method, shape, params)
        window = tensor_window(slice, shard)
        buffer, headers = await self._bytes(tensor_call(spec, "raw", window))
        return decode_tensor(buffer, headers, spec, window)

    async def download_tensor(self, method: MethodName | TensorSpec, shape: Sequence[int] | None = None,
                        path: str | os.PathLike[str] | None = None, *, format: TensorFormat = "npy",
                        slice: Slice | None = None, shard: Shard | None = None,
                        **params: Unpack[TensorParams]) -> Path:
        """Stream one tensor to ``path`` as ``format`` (npy, safetensors, json, raw), atomically; returns the path.
        With a :class:`TensorSpec`, pass ``shape=None`` (``download_tensor(spec, path="w.npy")``). ``slice`` and
        ``shard``: only that part of the tensor, as in :meth:`tensor`."""
        if isinstance(method, TensorSpec) and isinstance(shape, str | os.PathLike):
            raise InvalidSpec("shape", shape, "with a TensorSpec, pass the file as path=: download_tensor(spec, path=...)")
        spec = tensor_spec(method, shape, params)
        window = tensor_window(slice, shard)
        return await self._download(tensor_call(spec, format, window), check_path(path))

    # --- models -----------------------------------------------------------------------------------------

    async def manifest(self, layers: Sequence[Mapping[str, Any]], *, framework: Framework = "torch",
                 scheme: Scheme = "framework", seed: int = 0, dtype: ModelDType = "float32",
                 n_layer: int | None = None, tensors: Sequence[str] | None = None,
                 slices: Mapping[str, Slice] | None = None, shards: Mapping[str, Shard] | None = None) -> dict[str, Any]:
        """The manifest of a model (``POST /v1/model?format=manifest``): per tensor its name, shape, dtype,
        resolved initialization, byte range in the safetensors answer and SHA-256. With ``slices``/``shards``
        (tensor name → window, as :meth:`tensor`'s ``slice``/``shard``), those of the windows, and each
        tensor's ``window`` (its box, or None)."""
        body = model_body(layers, framework, scheme, seed, dtype, n_layer, slices=slices, shards=shards)
        return json_object(await self._body(model_call(body, "manifest", tensor_names(tensors))))

    async def model(self, layers: Sequence[Mapping[str, Any]], *, framework: Framework = "torch",
              scheme: Scheme = "framework", seed: int = 0, dtype: ModelDType = "float32", n_layer: int | None = None,
              tensors: Sequence[str] | None = None, slices: Mapping[str, Slice] | None = None,
              shards: Mapping[str, Shard] | None = None, verify: bool = True) -> dict[str, Array]:
        """Every tensor of a model (``POST /v1/model``, safetensors), by name in the service's order. With
        ``verify``, each tensor's SHA-256 is checked against the manifest of the same request
        (:class:`~initserve_client.errors.IntegrityError` on a difference). ``slices``/``shards`` (tensor name
        → window, as :meth:`tensor`'s ``slice``/``shard``): only those parts of the named tensors, verified
        against the manifest of the same windows."""
        body = model_body(layers, framework, scheme, seed, dtype, n_layer, slices=slices, shards=shards)
        names = tensor_names(tensors)
        manifest = json_object(await self._body(model_call(body, "manifest", names))) if verify else None
        bar = self._bar("model", leave=False)
        try:
            sink = BufferSink(bar)
            await self._perform(model_call(body, "safetensors", names), sink)
        finally:
            bar.close()
        return decode_model(sink.buffer, manifest)

    async def download_model(self, layers: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *,
                       format: ModelFormat = "safetensors", verify: bool = True, framework: Framework = "torch",
                       scheme: Scheme = "framework", seed: int = 0, dtype: ModelDType = "float32",
                       n_layer: int | None = None, tensors: Sequence[str] | None = None,
                       slices: Mapping[str, Slice] | None = None, shards: Mapping[str, Shard] | None = None) -> Path:
        """Stream a model to ``path`` as ``format`` (safetensors, npz, json, manifest), atomically; returns the
        path. With ``verify`` (not for ``manifest``), each tensor's SHA-256 is checked against the manifest
        before the file is put in place (safetensors while it streams, npz and json by decoding the file).
        ``slices``/``shards``: only those parts of the named tensors, as in :meth:`model`."""
        body = model_body(layers, framework, scheme, seed, dtype, n_layer, slices=slices, shards=shards)
        names = tensor_names(tensors)
        call = model_call(body, format, names)
        target = check_path(path)
        if not verify or format == "manifest":
            return await self._download(call, target)
        manifest = json_object(await self._body(model_call(body, "manifest", names)))
        if format == "safetensors":
            return await self._download(call, target, hasher=RangeHasher(manifest))
        return await self._download(call, target, manifest=manifest)

    # --- statistics -------------------------------------------------------------------------------------

    async def stats(self, method: MethodName | TensorSpec | None = None, shape: Sequence[int] | None = None, *,
              layers: Sequence[Mapping[str, Any]] | None = None, framework: Framework | None = None,
              scheme: Scheme | None = None, n_layer: int | None = None, bins: int = 20, sample: int | None = None,
              **params: Unpack[TensorParams]) -> dict[str, Any]:
        """Empirical statistics against theory (``POST /v1/stats``) of one tensor (method and shape, or a
        :class:`TensorSpec`) or of every tensor of a model (``layers=`` with framework, scheme, seed, dtype,
        n_layer)."""
        body = stats_body(method, shape, layers, {"framework": framework, "scheme": scheme, "n_layer": n_layer},
                          params)
        return json_object(await self._body(stats_call(body, bins, sample)))

    async def propagation(self, layers: Sequence[Mapping[str, Any]], *, scheme: Scheme = "framework",
                    batch_size: int = 256, input: Mapping[str, Any] | None = None,
                    input_shape: Sequence[int] | None = None, framework: Framework = "torch", seed: int = 0,
                    n_layer: int | None = None) -> dict[str, Any]:
        """Activation and gradient spread through a stack of linear/conv2d layers (``POST
        /v1/stats/propagation``); ``input`` is the law of the batch (``{"method": "uniform", ...}``)."""
        body = propagation_body(layers, framework, scheme, seed, n_layer, batch_size, input, input_shape)
        return json_object(await self._body(propagation_call(body)))

    # --- catalogue --------------------------------------------------------------------------------------

    async def methods(self) -> list[dict[str, Any]]:
        """Every method: aliases, parameters (kind, default, bounds, choices), formula, theory, reference."""
        return methods_list(await self._body(methods_call()))

    async def gain(self, nonlinearity: Nonlinearity, negative_slope: float | None = None) -> float:
        """The recommended gain of ``nonlinearity`` (torch's ``calculate_gain``, and second-moment gains)."""
        return gain_value(await self._body(gain_call(nonlinearity, negative_slope)))

    async def fans(self, shape: Sequence[int], layout: Layout = "torch") -> dict[str, Any]:
        """``fan_in``, ``fan_out`` and ``receptive_field`` of ``shape`` in ``layout``."""
        return json_object(await self._body(fans_call(shape, layout)))

