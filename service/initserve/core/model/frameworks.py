"""The three naming and layout conventions a model can follow: torch, keras and flax."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from initserve.core.layout import Layout
from initserve.core.model import flax, keras, torch
from initserve.core.model.layers import Config
from initserve.core.model.parameter import Parameter

FrameworkName = Literal["torch", "keras", "flax"]


@dataclass(frozen=True)
class Framework:
    """How one framework names layers and tensors, lays out kernels and fills them by default."""

    name: FrameworkName
    layout: Layout
    parameters: Mapping[str, Callable[[Config], list[Parameter]]]
    layer_names: Mapping[str, str]  # layer type → base name of auto-named layers (keras, flax)
    separator: str

    def default_layer_name(self, kind: str, index: int, seen: int) -> str:
        """The name of the ``index``-th layer, the ``seen``-th of its base name so far."""
        if self.name == "torch":
            return str(index)  # nn.Sequential
        base = self.layer_names[kind]
        if self.name == "keras":
            return base if seen == 0 else f"{base}_{seen}"
        return f"{base}_{seen}"

    def base_name(self, kind: str) -> str:
        """The key auto-naming counts layers by (the torch index ignores it)."""
        return self.layer_names.get(kind, kind)

    def tensor_name(self, layer: str, parameter: Parameter) -> str:
        """The full tensor name: ``0.weight``, ``dense/kernel``, ``params/Dense_0/kernel``."""
        name = f"{layer}{self.separator}{parameter.path}"
        return f"{parameter.collection}/{name}" if self.name == "flax" else name


FRAMEWORKS: dict[str, Framework] = {
    "torch": Framework("torch", "torch", torch.PARAMETERS, {}, "."),
    "keras": Framework("keras", "keras", keras.PARAMETERS, keras.LAYER_NAMES, "/"),
    "flax": Framework("flax", "jax", flax.PARAMETERS, flax.LAYER_NAMES, "/"),
}
