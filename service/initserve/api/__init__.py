"""initserve's HTTP layer: FastAPI app, wire schemas, routers and the error table.

- :mod:`~initserve.api.app`: ``create_app(settings)``, the factory uvicorn calls;
- :mod:`~initserve.api.settings`: ``Settings`` (``INITSERVE_*``), ``get_settings()``;
- :mod:`~initserve.api.schemas`: pydantic wire models generated from the core catalogue;
- :mod:`~initserve.api.query`: query strings to the same argument dicts as JSON bodies;
- :mod:`~initserve.api.serving`: limits → core → formats → streamed answer;
- :mod:`~initserve.api.errors`: the one table mapping errors to problem+json answers;
- :mod:`~initserve.api.routers`: thin routes (tensor, catalogue, health).
"""

from initserve.api.app import create_app
from initserve.api.errors import TooLarge
from initserve.api.settings import Settings, get_settings

__all__ = ["Settings", "TooLarge", "create_app", "get_settings"]
