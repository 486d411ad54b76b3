"""Keras 3 adapter: a ``keras.initializers.Initializer`` whose values come from the service.

::

    import keras
    from initserve_client.keras import ServiceInitializer

    init = ServiceInitializer("he_normal", base_url="http://127.0.0.1:8000", seed=1, name_prefix="mlp/")
    layer = keras.layers.Dense(64, kernel_initializer=init)

Each call asks ``/v1/tensor`` for ``method`` with the requested shape, Keras'
layout (kernels ``[*kernel, in, out]``, so fans are Keras' fans), the seed, and a
tensor name: the explicit ``name`` if one was given (every call then returns the
same tensor for the same shape, as a Keras initializer seeded with an integer
does), else ``name_prefix`` followed by a per-instance call counter (``mlp/0``,
``mlp/1`` …), so one instance shared by several layers gives each its own
values, the same values in every process that builds the same layers in the
same order. Extra keyword arguments are the method's parameters (``std=0.02``,
``gain=2.0``, ``mode="fan_out"``…).

The class exists only when Keras is installed; without it, importing this module
works and using :class:`ServiceInitializer` raises ``ImportError``.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from initserve_client import Client
from initserve_client.catalog import DType, MethodName
from initserve_client.client import client_session

__all__ = ["ServiceInitializer"]

_SERVED_DTYPES: tuple[DType, ...] = ("float32", "float64", "float16", "bfloat16")

try:
    keras: Any = importlib.import_module("keras")
except ImportError as error:
    keras = None
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None


def _served(dtype: str) -> DType:
    """The dtype to ask the service for: ``dtype`` itself when served, else float32 (Keras converts)."""
    for name in _SERVED_DTYPES:
        if name == dtype:
            return name
    return "float32"


class _ServiceInitializerMixin:
    """The behaviour of :class:`ServiceInitializer`, independent of Keras."""

    def __init__(self, method: MethodName, *, client: Client | None = None, base_url: str | None = None, seed: int = 0,
                 name: str | None = None, name_prefix: str = "", **params: Any) -> None:
        if client is not None and base_url is not None:
            raise ValueError("pass either client= or base_url=, not both")
        if client is None and base_url is None:
            raise ValueError("pass client=initserve_client.Client(...) or base_url='http://host:port'")
        self.method = method
        self.client = client
        self.base_url = base_url
        self.seed = seed
        self.name = name
        self.name_prefix = name_prefix
        self.params = params
        self.calls = 0

    def next_name(self) -> str:
        """The tensor name of the next call (the explicit ``name``, else ``name_prefix`` + call counter)."""
        if self.name is not None:
            return self.name
        name = f"{self.name_prefix}{self.calls}"
        self.calls += 1
        return name

    def fetch(self, shape: tuple[int, ...], dtype: str) -> np.ndarray[Any, Any]:
        """The service's tensor for the next call, in ``dtype`` if the service has it (else float32)."""
        served = _served(dtype)
        with client_session(self.client, self.base_url) as session:
            array: np.ndarray[Any, Any] = session.tensor(self.method, [int(d) for d in shape], dtype=served,
                                                         layout="keras", seed=self.seed, name=self.next_name(),
                                                         **self.params)
        return array

    def config(self) -> dict[str, Any]:
        """The constructor arguments; a ``client`` is not serializable and is replaced by its ``base_url``."""
        base_url = self.base_url if self.client is None else self.client.base_url
        return {"method": self.method, "base_url": base_url, "seed": self.seed, "name": self.name,
                "name_prefix": self.name_prefix, **self.params}


if keras is not None:

    @keras.saving.register_keras_serializable(package="initserve")
    class ServiceInitializer(_ServiceInitializerMixin, keras.initializers.Initializer):  # type: ignore[misc]
        """A Keras initializer backed by initserve's ``/v1/tensor`` (layout ``keras``); see the module docs."""

        def __call__(self, shape: Any, dtype: Any = None) -> Any:
            """The tensor for ``shape`` as a backend tensor of ``dtype`` (default ``keras.config.floatx()``)."""
            wanted = keras.backend.standardize_dtype(dtype or keras.config.floatx())
            array = self.fetch(tuple(shape), wanted)
            return keras.ops.convert_to_tensor(array, dtype=wanted)

        def get_config(self) -> dict[str, Any]:
            """The configuration ``from_config`` rebuilds the initializer from (its call counter restarts)."""
            return self.config()

else:

    def __getattr__(name: str) -> Any:
        if name == "ServiceInitializer":
            raise ImportError("initserve_client.keras.ServiceInitializer needs Keras 3: "
                              "pip install 'initserve-client[keras]'") from _IMPORT_ERROR
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
