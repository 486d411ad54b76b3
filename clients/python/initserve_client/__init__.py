"""initserve-client: deterministic, seeded neural-network weight tensors from an initserve service, as numpy.

::

    from initserve_client import Client, AsyncClient, TensorSpec, errors

    with Client("http://127.0.0.1:8000") as client:
        w = client.tensor("xavier_uniform", [256, 128], seed=1, name="fc1.weight", gain=2.0)
        weights = client.model([{"type": "linear", "in_features": 10, "out_features": 64}], scheme="he")

:class:`Client` and :class:`AsyncClient` have the same methods (awaited in the latter). Requests are
validated before they are sent (:class:`errors.InvalidSpec`); errors of the service are
:class:`errors.APIError` subclasses mirroring its problem+json answers. See ``README.md``.
"""

from initserve_client import errors
from initserve_client._base import __version__
from initserve_client.aclient import AsyncClient
from initserve_client.catalog import (
    DType,
    Framework,
    Layout,
    MethodName,
    ModelDType,
    ModelFormat,
    Nonlinearity,
    Preset,
    TensorFormat,
    is_dtype,
    is_framework,
    is_layout,
    is_method,
    is_preset,
)
from initserve_client.client import Client
from initserve_client.errors import (
    APIError,
    InitserveError,
    IntegrityError,
    InvalidRequest,
    InvalidSpec,
    TooLarge,
    TransportError,
)
from initserve_client.specs import Scheme, Shard, ShardDict, Slice, TensorParams, TensorSpec

__all__ = [
    "APIError",
    "AsyncClient",
    "Client",
    "DType",
    "Framework",
    "InitserveError",
    "IntegrityError",
    "InvalidRequest",
    "InvalidSpec",
    "Layout",
    "MethodName",
    "ModelDType",
    "ModelFormat",
    "Nonlinearity",
    "Preset",
    "Scheme",
    "Shard",
    "ShardDict",
    "Slice",
    "TensorFormat",
    "TensorParams",
    "TensorSpec",
    "TooLarge",
    "TransportError",
    "__version__",
    "errors",
    "is_dtype",
    "is_framework",
    "is_layout",
    "is_method",
    "is_preset",
]
