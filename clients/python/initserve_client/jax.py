"""JAX/Flax adapter: the variables pytree of a Flax (linen) model, from a layer list.

:func:`params` asks ``POST /v1/model`` with ``framework="flax"`` and unflattens the
``/``-separated tensor names (``params/Dense_0/kernel``,
``batch_stats/BatchNorm_0/mean``) into the nested dict ``model.init`` returns —
the whole variables dict, collections included::

    from initserve_client.jax import params

    variables = params([{"type": "dense", "in_features": 784, "out_features": 128},
                        {"type": "dense", "in_features": 128, "out_features": 10}],
                       base_url="http://127.0.0.1:8000", scheme="lecun", seed=0)
    logits = model.apply(variables, x)   # variables["params"]["Dense_0"]["kernel"]: (784, 128)

Layer names follow ``@nn.compact`` naming (``Dense_0``, ``Conv_1``, ``RNN_0/cell``…)
unless a layer has a ``name``; see ``docs/models.md`` for the shapes and the
defaults of the ``framework`` scheme.

Leaves are ``jax.numpy`` arrays when JAX is installed and numpy arrays otherwise
(``arrays="numpy"`` or ``"jax"`` chooses explicitly); the result is a plain
``dict`` either way, as ``flax.linen`` returns since 0.8. bfloat16 leaves are
``jnp.bfloat16`` under JAX (bit-exact); as numpy they are ``ml_dtypes.bfloat16``
when ml_dtypes is installed, else float32 arrays holding the same values.
float64 needs ``jax.config.update("jax_enable_x64", True)`` first: JAX would
otherwise round to float32, which :func:`params` refuses.

This module imports without JAX or Flax.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from initserve_client import Client
from initserve_client.catalog import ModelDType
from initserve_client.client import client_session
from initserve_client.specs import Scheme

__all__ = ["params", "unflatten"]

Arrays = Literal["auto", "numpy", "jax"]


def unflatten(flat: Mapping[str, Any], sep: str = "/") -> dict[str, Any]:
    """Nest ``{"params/Dense_0/kernel": v}`` into ``{"params": {"Dense_0": {"kernel": v}}}`` (order kept).

    Raises ``ValueError`` when a name is also a prefix of another name, or has an empty part.
    """
    for name in flat:
        parts = name.split(sep)
        if not all(parts):
            raise ValueError(f"tensor name {name!r} has an empty path component")
        for depth in range(1, len(parts)):
            if sep.join(parts[:depth]) in flat:
                raise ValueError(f"{sep.join(parts[:depth])!r} is a tensor name and a prefix of {name!r}")
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        *path, leaf = name.split(sep)
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _jax_numpy() -> Any | None:
    try:
        return importlib.import_module("jax.numpy")
    except ImportError:
        return None


def _to_jax(jnp: Any, array: np.ndarray[Any, Any], dtype: str, name: str) -> Any:
    """``array`` as a jax array of the requested dtype, refusing any silent rounding."""
    if dtype == "bfloat16" and array.dtype.name != "bfloat16":
        value = jnp.asarray(array, dtype=jnp.bfloat16)  # float32 holding bfloat16 values: exact
    else:
        value = jnp.asarray(array)
    if str(value.dtype) != dtype:
        raise ValueError(f"{name}: JAX turned {dtype} into {value.dtype}; for float64 call "
                         'jax.config.update("jax_enable_x64", True) first')
    return value


def params(layers: Sequence[Mapping[str, Any]], *, client: Client | None = None, base_url: str | None = None,
           scheme: Scheme = "framework", seed: int = 0, dtype: ModelDType = "float32",
           n_layer: int | None = None, arrays: Arrays = "auto") -> dict[str, Any]:
    """The Flax variables dict (``{"params": …, "batch_stats": …}``) for ``layers``, from ``/v1/model``.

    ``layers`` are ``POST /v1/model`` layers; ``scheme``, ``seed``, ``dtype`` and
    ``n_layer`` are sent as they are (``framework="flax"``). ``client`` (an open
    :class:`~initserve_client.Client`) or ``base_url`` (a client is opened and closed
    here) says where the service is. ``arrays``: ``"auto"`` gives ``jax.numpy``
    arrays when JAX imports, else numpy; ``"jax"`` requires JAX (``ImportError``).
    """
    if arrays not in ("auto", "numpy", "jax"):
        raise ValueError(f"arrays must be 'auto', 'numpy' or 'jax', not {arrays!r}")
    jnp = _jax_numpy() if arrays != "numpy" else None
    if arrays == "jax" and jnp is None:
        raise ImportError("arrays='jax' needs JAX: pip install 'initserve-client[jax]'")
    with client_session(client, base_url) as session:
        weights = session.model(list(layers), framework="flax", scheme=scheme, seed=seed, dtype=dtype,
                                n_layer=n_layer)
    if jnp is not None:
        weights = {name: _to_jax(jnp, array, dtype, name) for name, array in weights.items()}
    return unflatten(weights)
