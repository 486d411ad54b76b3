"""initserve's numerics: deterministic, seeded weight initialization with numpy only.

No FastAPI, Starlette or pydantic here (a test enforces it). Entry point:
:func:`resolve` validates a spec and returns a lazily generated :class:`Tensor`.
"""

from initserve.core.distributions import Theory
from initserve.core.dtypes import DTYPES, STORAGE
from initserve.core.errors import SpecError
from initserve.core.gains import NONLINEARITIES, calculate_gain
from initserve.core.layout import LAYOUTS, Fans, compute_fans
from initserve.core.methods import METHODS, Method, lookup
from initserve.core.params import Param
from initserve.core.tensor import ALGORITHM_VERSION, Tensor, TensorSpec, flat_boxes, resolve
from initserve.core.window import Window, box_json, shard_box, slice_box, window_box

__all__ = [
    "ALGORITHM_VERSION",
    "DTYPES",
    "LAYOUTS",
    "METHODS",
    "NONLINEARITIES",
    "STORAGE",
    "Fans",
    "Method",
    "Param",
    "SpecError",
    "Tensor",
    "TensorSpec",
    "Theory",
    "Window",
    "box_json",
    "calculate_gain",
    "compute_fans",
    "flat_boxes",
    "lookup",
    "resolve",
    "shard_box",
    "slice_box",
    "window_box",
]
