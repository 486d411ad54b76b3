"""initserve_client.keras: a Keras initializer backed by /v1/tensor (only where Keras 3 is installed).

Fixtures from ``conftest.py``: ``client`` talks to the service in-process, ``server`` is the base URL of a
real ``initserve serve`` process (the byte-for-byte oracle, and the target of ``base_url=``).
"""

from __future__ import annotations

import importlib
import importlib.util
import io
from typing import Any

import httpx
import numpy as np
import pytest

from initserve_client import Client

HAS_KERAS = importlib.util.find_spec("keras") is not None


@pytest.mark.skipif(HAS_KERAS, reason="Keras is installed")
def test_module_imports_without_keras() -> None:
    module = importlib.import_module("initserve_client.keras")
    with pytest.raises(ImportError, match="needs Keras"):
        module.ServiceInitializer("normal", base_url="http://127.0.0.1:1")
    with pytest.raises(AttributeError):
        module.NotThere  # noqa: B018


# --- with Keras ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras() -> Any:
    return pytest.importorskip("keras")


def service_tensor(url: str, **spec: Any) -> np.ndarray[Any, Any]:
    """``POST /v1/tensor`` (npy) with plain httpx: the oracle."""
    response = httpx.post(f"{url}/v1/tensor", json=spec, timeout=60)
    assert response.status_code == 200, response.text
    array: np.ndarray[Any, Any] = np.load(io.BytesIO(response.content), allow_pickle=False)
    return array


def test_is_a_keras_initializer(keras: Any, client: Client) -> None:
    from initserve_client.keras import ServiceInitializer

    init = ServiceInitializer("he_normal", client=client, seed=3)
    assert isinstance(init, keras.initializers.Initializer)


def test_values_are_the_services(keras: Any, server: str, client: Client) -> None:
    from initserve_client.keras import ServiceInitializer

    init = ServiceInitializer("glorot_uniform", client=client, seed=3, name_prefix="mlp/", gain=2.0)
    first = keras.ops.convert_to_numpy(init((3, 3, 4, 8)))
    second = keras.ops.convert_to_numpy(init((3, 3, 4, 8), dtype="float64"))
    common = {"method": "glorot_uniform", "shape": [3, 3, 4, 8], "layout": "keras", "seed": 3, "gain": 2.0}
    np.testing.assert_array_equal(first, service_tensor(server, **common, name="mlp/0"))
    np.testing.assert_array_equal(second, service_tensor(server, **common, name="mlp/1", dtype="float64"))
    assert first.dtype == np.float32 and second.dtype == np.float64
    named = ServiceInitializer("normal", client=client, seed=3, name="fc.kernel", std=0.02)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(named((5, 2))), keras.ops.convert_to_numpy(named((5, 2))))


def test_same_layers_same_weights(keras: Any, server: str) -> None:
    from initserve_client.keras import ServiceInitializer

    def build() -> Any:
        init = ServiceInitializer("he_uniform", base_url=server, seed=9, name_prefix="net/")
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, kernel_initializer=init),
                                  keras.layers.Dense(2, kernel_initializer=init)])
        return [np.asarray(w) for w in model.get_weights()]

    first, second = build(), build()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0][:2, :2], first[2][:2, :2])  # one instance, two layers, two tensors


def test_config_round_trip(keras: Any, server: str) -> None:
    from initserve_client.keras import ServiceInitializer

    init = ServiceInitializer("truncated_normal", base_url=server, seed=4, name_prefix="x/", std=0.5)
    config = init.get_config()
    assert config == {"method": "truncated_normal", "base_url": server, "seed": 4, "name": None,
                      "name_prefix": "x/", "std": 0.5}
    clone = ServiceInitializer.from_config(config)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone((4, 4))),
                                  keras.ops.convert_to_numpy(init((4, 4))))
    restored = keras.initializers.deserialize(keras.initializers.serialize(init))
    assert isinstance(restored, ServiceInitializer) and restored.get_config() == config
