"""initserve_client.jax: the Flax variables pytree from /v1/model (numpy always; JAX and Flax where installed).

Fixtures from ``conftest.py``: ``client`` talks to the service in-process, ``server`` is the base URL of a
real ``initserve serve`` process (the byte-for-byte oracle, and the target of ``base_url=``).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest
from adapter_fixtures import raw_model

from initserve_client import Client
from initserve_client.jax import params, unflatten

HAS_JAX = importlib.util.find_spec("jax") is not None

LAYERS: list[dict[str, Any]] = [
    {"type": "conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": [3, 3]},
    {"type": "batch_norm2d", "num_features": 8},
    {"type": "linear", "in_features": 8, "out_features": 16, "nonlinearity": "relu"},
    {"type": "lstm", "input_size": 16, "hidden_size": 4},
    {"type": "multihead_attention", "embed_dim": 16, "num_heads": 4},
    {"type": "layer_norm", "normalized_shape": 16},
    {"type": "linear", "in_features": 16, "out_features": 10, "name": "head"},
]


def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The pytree flattened back to ``/``-joined paths (depth first, insertion order)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(leaves(value, f"{path}/"))
        else:
            flat[path] = value
    return flat


def test_unflatten_nests_on_slashes() -> None:
    tree = unflatten({"params/Dense_0/kernel": 1, "params/Dense_0/bias": 2, "batch_stats/BN/mean": 3, "top": 4})
    assert tree == {"params": {"Dense_0": {"kernel": 1, "bias": 2}}, "batch_stats": {"BN": {"mean": 3}}, "top": 4}
    assert unflatten({"a.b": 1, "a.c": 2}, sep=".") == {"a": {"b": 1, "c": 2}}


@pytest.mark.parametrize("flat", [{"a/b": 1, "a/b/c": 2}, {"a/b/c": 1, "a/b": 2}, {"a//b": 1}, {"/a": 1}])
def test_unflatten_refuses_ambiguous_names(flat: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        unflatten(flat)


def test_numpy_pytree_structure(client: Client) -> None:
    variables = params(LAYERS, client=client, scheme="lecun", seed=3, arrays="numpy")
    assert list(variables) == ["params", "batch_stats"]
    assert list(variables["params"]) == ["Conv_0", "BatchNorm_0", "Dense_0", "RNN_0",
                                         "MultiHeadDotProductAttention_0", "LayerNorm_0", "head"]
    assert variables["batch_stats"] == {"BatchNorm_0": {"mean": variables["batch_stats"]["BatchNorm_0"]["mean"],
                                                        "var": variables["batch_stats"]["BatchNorm_0"]["var"]}}
    p = variables["params"]
    shapes = {path: value.shape for path, value in leaves(p).items()}
    assert shapes["Conv_0/kernel"] == (3, 3, 3, 8) and shapes["Conv_0/bias"] == (8,)
    assert shapes["Dense_0/kernel"] == (8, 16) and shapes["head/kernel"] == (16, 10)
    assert set(p["RNN_0"]["cell"]) == {"ii", "if", "ig", "io", "hi", "hf", "hg", "ho"}
    assert shapes["RNN_0/cell/ii/kernel"] == (16, 4) and shapes["RNN_0/cell/hi/bias"] == (4,)
    assert "bias" not in p["RNN_0"]["cell"]["ii"]
    attention = p["MultiHeadDotProductAttention_0"]
    assert attention["query"]["kernel"].shape == (16, 4, 4) and attention["out"]["kernel"].shape == (4, 4, 16)
    assert shapes["LayerNorm_0/scale"] == (16,)
    for value in leaves(variables).values():
        assert isinstance(value, np.ndarray) and value.dtype == np.float32
    np.testing.assert_array_equal(variables["batch_stats"]["BatchNorm_0"]["var"], np.ones(8, np.float32))
    np.testing.assert_array_equal(p["LayerNorm_0"]["scale"], np.ones(16, np.float32))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_values_equal_v1_model(server: str, client: Client, dtype: Any) -> None:
    variables = params(LAYERS, client=client, seed=5, dtype=dtype, arrays="numpy")
    expected = raw_model(server, LAYERS, framework="flax", seed=5, dtype=dtype)
    got = leaves(variables)
    assert sorted(got) == sorted(expected)
    for name, raw in expected.items():
        assert got[name].shape == raw.shape and got[name].tobytes() == raw.data, name


def test_bfloat16_values_are_exact(server: str, client: Client) -> None:
    variables = params(LAYERS[:3], client=client, seed=2, dtype="bfloat16", arrays="numpy")
    expected = raw_model(server, LAYERS[:3], framework="flax", seed=2, dtype="bfloat16")
    for name, value in leaves(variables).items():
        np.testing.assert_array_equal(np.asarray(value, dtype=np.float32), expected[name].numpy())


def test_base_url_and_errors(server: str, client: Client) -> None:
    by_url = params(LAYERS[:1], base_url=server, seed=1, arrays="numpy")
    by_client = params(LAYERS[:1], client=client, seed=1, arrays="numpy")
    np.testing.assert_array_equal(by_url["params"]["Conv_0"]["kernel"], by_client["params"]["Conv_0"]["kernel"])
    with pytest.raises(ValueError, match="base_url"):
        params(LAYERS)
    with pytest.raises(ValueError, match="arrays"):
        params(LAYERS, client=client, arrays="torch")  # type: ignore[arg-type]


@pytest.mark.skipif(HAS_JAX, reason="JAX is installed")
def test_without_jax_auto_means_numpy(client: Client) -> None:
    variables = params(LAYERS[:1], client=client, seed=1)
    assert isinstance(variables["params"]["Conv_0"]["kernel"], np.ndarray)
    with pytest.raises(ImportError, match="JAX"):
        params(LAYERS[:1], client=client, arrays="jax")


# --- with JAX (and Flax) ---------------------------------------------------------------------------------------


def test_jax_arrays(server: str, client: Client) -> None:
    jnp = pytest.importorskip("jax.numpy")
    variables = params(LAYERS, client=client, seed=4)
    expected = raw_model(server, LAYERS, framework="flax", seed=4)
    for name, value in leaves(variables).items():
        assert isinstance(value, type(jnp.zeros(1))) and str(value.dtype) == "float32", name
        assert np.asarray(value).tobytes() == expected[name].data, name
    bf16 = params(LAYERS[:1], client=client, seed=4, dtype="bfloat16", arrays="jax")
    assert str(bf16["params"]["Conv_0"]["kernel"].dtype) == "bfloat16"


def test_flax_init_has_the_same_structure(client: Client) -> None:
    jax = pytest.importorskip("jax")
    nn = pytest.importorskip("flax.linen")

    class Net(nn.Module):  # type: ignore[misc, name-defined, unused-ignore]
        @nn.compact  # type: ignore[untyped-decorator, unused-ignore]
        def __call__(self, x: Any) -> Any:
            x = nn.Conv(8, (3, 3))(x)
            x = nn.BatchNorm(use_running_average=True)(x)
            x = nn.relu(nn.Dense(16)(x.mean(axis=(1, 2))))
            return nn.Dense(10, name="head")(x)

    layers = [LAYERS[0], LAYERS[1], LAYERS[2], LAYERS[6]]
    x = jax.numpy.ones((2, 6, 6, 3))
    reference = Net().init(jax.random.PRNGKey(0), x)
    ours = params(layers, client=client, seed=1)
    assert jax.tree_util.tree_structure(reference) == jax.tree_util.tree_structure(ours)
    assert jax.tree_util.tree_map(lambda a: a.shape, reference) == jax.tree_util.tree_map(lambda a: a.shape, ours)
    assert Net().apply(ours, x).shape == (2, 10)
