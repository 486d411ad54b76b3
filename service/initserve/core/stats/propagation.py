"""How signal travels through a stack of layers: a batch forward, a unit gradient backward.

:func:`propagate` builds the weights exactly as ``/v1/model`` serves them for the
same layers, scheme, framework and seed; draws a deterministic input batch (the
tensor ``input`` of the given spec, shape ``[batch, *input_shape]``) and a
deterministic N(0, 1) gradient at the output (the tensor ``gradient``); and
computes, in float64, for every layer ℓ with ``h = W·a + b`` and ``a = f(h)``
(``f`` the layer's ``nonlinearity``; none is the identity):

- ``preactivation`` / ``activation``: mean and std of h and a over batch and units;
- ``saturated_fraction``: share of outputs saturated (|a| > 0.99 for tanh, a ∉ [0.01, 0.99]
  for sigmoid) or inactive (h ≤ 0 for the rectifiers); ``dead_unit_fraction``: share of units
  (features, channels) saturated or inactive for every example;
- ``gradient_std``: std of ∂L/∂h for L = Σ g·a_out, g the unit gradient;
- ``theory``: the mean-field prediction for wide layers (Poole et al. 2016; Schoenholz et al.
  2017): q_ℓ = fan_in·E[W²]·E[f(√q_{ℓ−1} z)²] + E[b²] with q₀ the input's second moment and z
  ~ N(0, 1), so ``preactivation_std`` = √q_ℓ and ``activation_std`` = std of f(√q_ℓ z);
  backward g̃_ℓ = g̃_{ℓ+1}·fan_out_{ℓ+1}·E[W²_{ℓ+1}]·E[f′(√q_ℓ z)²], ``gradient_std`` = √g̃_ℓ.
  Expectations use 64-point Gauss–Hermite quadrature.

Layers: ``linear`` and ``conv2d`` (stride 1, zero padding ⌊k/2⌋ so odd kernels keep the size,
groups 1); a linear after a conv flattens it. The numbers are float64 numpy results, not part of
the bit-for-bit contract.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from initserve.core import deadline
from initserve.core.errors import SpecError, WorkLimit
from initserve.core.layout import canonical_shape
from initserve.core.model import Model, ModelTensor, resolve_model
from initserve.core.stats.activations import Activation, activation
from initserve.core.stats.checks import canonical_values
from initserve.core.tensor import Tensor, resolve

PROPAGATION_TYPES = ("linear", "conv2d")
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(64)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def gaussian_expectation(function: Any, variance: float) -> float:
    """E[function(√variance · z)], z ~ N(0, 1)."""
    return float(np.dot(_WEIGHTS, function(math.sqrt(max(variance, 0.0)) * _NODES)))


@dataclass
class _Layer:
    index: int
    name: str
    kind: str
    weight: np.ndarray  # canonical [out, in, *kernel]
    bias: np.ndarray | None
    weight_moment: float  # E[W²] of the law
    bias_moment: float
    act: Activation

    @property
    def fan_in(self) -> int:
        return int(np.prod(self.weight.shape[1:]))

    @property
    def fan_out(self) -> int:
        return int(self.weight.shape[0] * np.prod(self.weight.shape[2:]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "linear":
            h = x.reshape(len(x), -1) @ self.weight.T
        else:
            windows = _windows(x, self.weight.shape[2:])
            h = np.einsum("bchwkl,ockl->bohw", windows, self.weight, optimize=True)
        if self.bias is not None:
            h = h + self.bias.reshape(1, -1, *([1] * (h.ndim - 2)))
        return np.asarray(h)

    def backward(self, grad: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
        """∂L/∂x from ∂L/∂h."""
        if self.kind == "linear":
            return np.asarray(grad @ self.weight).reshape(input_shape)
        kh, kw = self.weight.shape[2:]
        ph, pw = kh // 2, kw // 2
        _, _, height, width = input_shape
        padded = np.zeros((input_shape[0], input_shape[1], height + 2 * ph, width + 2 * pw))
        out_h, out_w = grad.shape[2:]
        for i in range(kh):
            for j in range(kw):
                padded[:, :, i : i + out_h, j : j + out_w] += np.einsum("bohw,oc->bchw", grad, self.weight[:, :, i, j])
        return padded[:, :, ph : ph + height, pw : pw + width]


def _windows(x: np.ndarray, kernel: tuple[int, ...]) -> np.ndarray:
    kh, kw = kernel
    padded = np.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    return sliding_window_view(padded, (kh, kw), axis=(2, 3))


def _moment(tensor: ModelTensor | None) -> float:
    if tensor is None:
        return 0.0
    theory = tensor.tensor.theory
    return theory.variance + theory.mean * theory.mean


@dataclass(frozen=True)
class _Plan:
    """One layer before anything is generated: kind, weight and bias tensors, activation."""

    index: int
    kind: str
    weight: ModelTensor
    bias: ModelTensor | None
    act: Activation

    @property
    def shape(self) -> tuple[int, ...]:
        """The canonical ``[out, in, *kernel]`` shape of the weight."""
        spec = self.weight.tensor.spec
        return canonical_shape(spec.shape, spec.layout)


def _plans(entries: Sequence[Mapping[str, Any]], tensors: Sequence[ModelTensor]) -> list[_Plan]:
    plans = []
    for index, entry in enumerate(entries):
        own = [t for t in tensors if t.layer_index == index]
        weight = next(t for t in own if t.role == "weight")
        bias = next((t for t in own if t.role == "bias"), None)
        kind = "linear" if entry["type"] in ("linear", "dense") else "conv2d"
        if kind == "conv2d" and entry.get("groups", 1) != 1:
            raise SpecError(f"layers.{index}.groups", entry["groups"], "propagation supports groups=1 only")
        plans.append(_Plan(index, kind, weight, bias, activation(entry.get("nonlinearity"), entry.get("negative_slope"))))
    return plans


def _check(plans: Sequence[_Plan], input_shape: tuple[int, ...], batch: int, budget: int) -> None:
    """Shapes must chain; the work (batch × outputs × fan_in) must stay within ``budget``."""
    if not input_shape or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in input_shape):
        raise SpecError("input_shape", list(input_shape), "must be a list of positive integers")
    shape = input_shape
    for plan in plans:
        where, weight = f"layers.{plan.index}", plan.shape
        fan_in = math.prod(weight[1:])
        if not all(weight):
            raise SpecError(where, list(weight), "propagation needs layers with at least one input and output")
        if plan.kind == "linear":
            if math.prod(shape) != fan_in:
                raise SpecError(f"{where}.in_features", fan_in, f"the previous output has {math.prod(shape)} "
                                f"features (shape {list(shape)})")
            shape = (weight[0],)
        else:
            if len(shape) != 3 or shape[0] != weight[1]:
                raise SpecError(f"{where}.in_channels", weight[1], f"the previous output has shape {list(shape)}; "
                                "conv2d needs [channels, height, width] (input_shape for the first layer)")
            if any(k % 2 == 0 for k in weight[2:]):
                raise SpecError(f"{where}.kernel_size", list(weight[2:]), "propagation needs odd kernel sizes")
            shape = (weight[0], *shape[1:])
        work = batch * math.prod(shape) * fan_in
        if work > budget:
            raise WorkLimit(where, work, f"batch × outputs × fan_in = {work} exceeds the propagation budget of "
                            f"{budget} (INITSERVE_MAX_PROPAGATION_WORK); use a smaller batch_size or layers")


def _layer(plan: _Plan) -> _Layer:
    """Generate the weights of ``plan`` (as /v1/model serves them) in float64 (a whole-matrix method's
    built matrix is dropped at once: the float64 copy is what the layer keeps)."""
    deadline.check()
    bias = None if plan.bias is None else canonical_values(plan.bias.tensor).ravel()
    weight = canonical_values(plan.weight.tensor)
    plan.weight.tensor.release()
    return _Layer(plan.index, plan.weight.layer, plan.kind, weight, bias, _moment(plan.weight), _moment(plan.bias),
                  plan.act)


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "std": float(values.std())}


def propagate(layers: Sequence[Mapping[str, Any]], *, input: Mapping[str, Any] | None = None,
              input_shape: Sequence[int] | None = None, batch_size: int = 256, framework: str = "torch",
              scheme: Any = "framework", seed: int = 0, n_layer: int | None = None,
              budget: int = 1 << 28, check: Callable[[Model, Tensor], None] | None = None) -> dict[str, Any]:
    """The forward/backward report of the module docstring.

    ``check(model, input)`` is called before anything is generated (the caller's size limits).
    """
    if not isinstance(layers, list | tuple) or not layers:
        raise SpecError("layers", layers, "must be a non-empty list of linear or conv2d layers")
    for index, entry in enumerate(layers):
        if not isinstance(entry, Mapping) or entry.get("type") not in (*PROPAGATION_TYPES, "dense"):
            kind = entry.get("type") if isinstance(entry, Mapping) else entry
            raise SpecError(f"layers.{index}.type", kind, "propagation takes linear (dense) and conv2d layers")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise SpecError("batch_size", batch_size, "must be an integer >= 2")
    model = resolve_model(list(layers), framework=framework, scheme=scheme, seed=seed, dtype="float32",
                          n_layer=n_layer)
    plans = _plans(layers, model.tensors)
    first = plans[0]
    if first.kind == "conv2d" and input_shape is None:
        raise SpecError("input_shape", None, "is required when the first layer is conv2d: [channels, height, width]")
    shape = tuple(input_shape) if input_shape is not None else (math.prod(first.shape[1:]),)
    _check(plans, shape, batch_size, budget)
    spec = dict(input or {"method": "normal"})
    try:
        source = resolve(shape=[batch_size, *shape], dtype="float64", seed=seed, name="input", **spec)
    except SpecError as error:
        raise SpecError(f"input.{error.field}", error.value, error.message) from None
    if check is not None:
        check(model, source)
    stack = [_layer(plan) for plan in plans]
    x = source.region().astype(np.float64)
    pre, post, grads = _forward_backward(stack, x, seed)
    theory = _mean_field(stack, source.theory.variance + source.theory.mean * source.theory.mean)
    records = [_record(layer, pre[i], post[i], grads[i], theory[i]) for i, layer in enumerate(stack)]
    return {"batch_size": batch_size, "input": {**_summary(x), "shape": [batch_size, *shape]}, "layers": records}


def _forward_backward(stack: Sequence[_Layer], x: np.ndarray,
                      seed: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Pre-activations and activations forward; ∂L/∂h backward from the deterministic unit gradient."""
    pre, post, inputs = [], [], []
    for layer in stack:
        deadline.check()
        inputs.append(x.shape)
        pre.append(layer.forward(x))
        x = layer.act.f(pre[-1])
        post.append(x)
    gradient = resolve("normal", list(x.shape), dtype="float64", seed=seed, name="gradient").region()
    grads: list[np.ndarray] = [np.empty(0)] * len(stack)
    for position in reversed(range(len(stack))):
        deadline.check()
        grads[position] = gradient * stack[position].act.derivative(pre[position])
        gradient = stack[position].backward(grads[position], inputs[position])
    return pre, post, grads


def _mean_field(stack: Sequence[_Layer], q: float) -> list[dict[str, float]]:
    """The mean-field preactivation, activation and gradient stds of every layer (``q``: input second moment)."""
    forward: list[tuple[float, float]] = []
    for position, layer in enumerate(stack):
        if position:
            q = gaussian_expectation(lambda v, f=stack[position - 1].act.f: f(v) ** 2, q)
        q = layer.fan_in * layer.weight_moment * q + layer.bias_moment
        mean = gaussian_expectation(layer.act.f, q)
        forward.append((q, gaussian_expectation(lambda v, f=layer.act.f: f(v) ** 2, q) - mean * mean))
    backward = [0.0] * len(stack)
    g = 1.0
    for position in reversed(range(len(stack))):
        if position < len(stack) - 1:
            g *= stack[position + 1].fan_out * stack[position + 1].weight_moment
        g *= gaussian_expectation(lambda v, d=stack[position].act.derivative: d(v) ** 2, forward[position][0])
        backward[position] = g
    return [{"preactivation_std": math.sqrt(q), "activation_std": math.sqrt(max(var, 0.0)),
             "gradient_std": math.sqrt(g)} for (q, var), g in zip(forward, backward, strict=True)]


def _record(layer: _Layer, h: np.ndarray, a: np.ndarray, grad: np.ndarray, theory: dict[str, float]) -> dict[str, Any]:
    """One layer's row of the report."""
    saturated = layer.act.saturated(h, a) if layer.act.saturated else None
    unit_axes = (0, *range(2, h.ndim))
    return {
        "index": layer.index, "name": layer.name, "type": layer.kind, "nonlinearity": layer.act.name,
        "fan_in": layer.fan_in, "fan_out": layer.fan_out, "weight_std": float(layer.weight.std()),
        "preactivation": _summary(h), "activation": _summary(a),
        "saturated_fraction": None if saturated is None else float(saturated.mean()),
        "dead_unit_fraction": None if saturated is None else float(saturated.all(axis=unit_axes).mean()),
        "gradient_std": float(grad.std()), "theory": theory,
    }
