"""Whole models: a list of layers → every tensor, named and initialized as a framework (or a scheme) does.

Entry point :func:`resolve_model`; the catalogue of layer types is
:data:`LAYER_TYPES`, the frameworks :data:`FRAMEWORKS`, the presets :data:`PRESETS`.
"""

from initserve.core.model.frameworks import FRAMEWORKS, FrameworkName
from initserve.core.model.layers import LAYER_TYPES, LayerType
from initserve.core.model.model import Model, ModelTensor, resolve_model
from initserve.core.model.schemes import PRESETS, PresetName

__all__ = [
    "FRAMEWORKS",
    "LAYER_TYPES",
    "PRESETS",
    "FrameworkName",
    "LayerType",
    "Model",
    "ModelTensor",
    "PresetName",
    "resolve_model",
]
