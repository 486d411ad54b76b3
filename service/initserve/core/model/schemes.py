"""Model-wide initialization schemes: the named presets and explicit ``{"weight", "bias"}`` rules.

A scheme decides the initialization of the parameters a framework marks as
*schemed* (kernels, embeddings, recurrent and projection matrices and their
biases; not normalization scales and shifts, nor running statistics):

==============  =================================================================
framework       what the framework's own constructors do (the default)
xavier          xavier_uniform — Glorot & Bengio 2010
he              kaiming_normal, fan_in — He et al. 2015
lecun           lecun_normal (truncated, variance 1/fan_in) — LeCun et al. 1998
orthogonal      orthogonal — Saxe et al. 2014
small_normal    N(0, 0.01²), the classic small random baseline (cs231n)
gpt2            N(0, 0.02²); layers marked ``residual_projection``:
                N(0, (0.02/√(2·n_layer))²) — Radford et al. 2019. ``n_layer``
                defaults to half the number of marked layers
                (two residual projections per transformer block)
==============  =================================================================

Presets set biases to zero, except a framework bias that is already constant
(Keras' LSTM unit forget bias stays). Gains follow each layer's
``nonlinearity`` (see :func:`with_nonlinearity`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from initserve.core.gains import calculate_gain
from initserve.core.methods import lookup
from initserve.core.model.parameter import ZEROS, Init, Parameter

PresetName = Literal["framework", "xavier", "he", "lecun", "orthogonal", "small_normal", "gpt2"]
PRESETS: dict[PresetName, Init | None] = {
    "framework": None,
    "xavier": Init("xavier_uniform"),
    "he": Init("kaiming_normal"),
    "lecun": Init("lecun_normal"),
    "orthogonal": Init("orthogonal"),
    "small_normal": Init("normal", {"std": 0.01}),
    "gpt2": Init("normal", {"std": 0.02}),
}
GPT2_STD = 0.02
_CONSTANT_METHODS = frozenset({"zeros", "ones", "constant"})


def gpt2_residual_std(projections: int) -> float:
    """0.02/√projections: GPT-2 scales residual projections by their number, 2·n_layer (attention and MLP)."""
    return GPT2_STD / math.sqrt(projections)


def preset_init(preset: str, parameter: Parameter, residual_std: float | None) -> Init | None:
    """What ``preset`` gives ``parameter`` (``None``: the framework default)."""
    weight = PRESETS[preset]  # type: ignore[index]
    if weight is None or not parameter.schemed:
        return None
    if parameter.role == "bias":
        return None if parameter.default.method in _CONSTANT_METHODS else ZEROS
    if preset == "gpt2" and residual_std is not None:
        return Init("normal", {"std": residual_std})
    return weight


def with_nonlinearity(init: Init, nonlinearity: str | None, negative_slope: float | None) -> Init:
    """``init`` with the gain of the layer's activation filled in, unless it sets a gain itself.

    Methods taking ``nonlinearity`` (xavier, kaiming) receive it (and ``negative_slope``); methods
    taking only ``gain`` (orthogonal, eye) receive ``calculate_gain(nonlinearity, negative_slope)``.
    """
    if nonlinearity is None or "gain" in init.params or "nonlinearity" in init.params:
        return init
    accepted = {param.name for param in lookup(init.method).params}
    extra: dict[str, Any] = {}
    if "nonlinearity" in accepted:
        extra["nonlinearity"] = nonlinearity
        if negative_slope is not None:
            extra["negative_slope"] = negative_slope
    elif "gain" in accepted:
        extra["gain"] = calculate_gain(nonlinearity, negative_slope)
    return Init(init.method, {**extra, **init.params}, init.zero_rows) if extra else init


def explicit_init(rules: Mapping[str, Init], parameter: Parameter) -> Init | None:
    """An explicit scheme's rule for ``parameter`` (by role), if it has one."""
    return rules.get(parameter.role) if parameter.schemed else None
