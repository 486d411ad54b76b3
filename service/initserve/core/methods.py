"""The catalogue of initialization methods: one record each, one engine beneath.

Every random method reduces to an elementwise law (:mod:`distributions`) with
parameters computed from fans and gains, or to a dense construction
(orthogonal, sparse, delta-orthogonal). Scalar formulas follow PyTorch's
``torch.nn.init`` operation by operation (so bounds and stds equal torch's to
the last bit); Keras/JAX semantics where they differ are opt-in parameters:
``truncated=true`` and ``variance_scaling`` (Keras ``VarianceScaling``, whose
truncated normal is divided by 0.87962566103423978, the std of N(0, 1)
truncated to [−2, 2]), ``bounds="std"`` for ``trunc_normal``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from initserve.core import linalg
from initserve.core.distributions import NORMAL_MAX_Z, Normal, Theory, TruncatedNormal, Uniform
from initserve.core.errors import SpecError
from initserve.core.gains import NONLINEARITIES, calculate_gain
from initserve.core.layout import Fans, Layout, canonical_shape, compute_fans
from initserve.core.params import REQUIRED, Param
from initserve.core.plans import Dense, Key, Pattern, Plan, Sampled
from initserve.core.special import TRUNCATED_NORMAL_STD_2
from initserve.core.stream import SUBSTREAM_SPARSE, words


@dataclass(frozen=True)
class Geometry:
    """The shape a method is asked to fill, in its layout."""

    shape: tuple[int, ...]
    layout: Layout

    @property
    def canonical(self) -> tuple[int, ...]:
        return canonical_shape(self.shape, self.layout)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def fans(self) -> Fans:
        """Fans for scaling; clamped to ≥ 1 (as Keras does) so 0-element tensors stay finite."""
        fans = compute_fans(self.shape, self.layout)
        return Fans(max(fans.fan_in, 1), max(fans.fan_out, 1), fans.receptive_field)

    def require_ndim(self, method: str, allowed: range) -> None:
        if len(self.shape) not in allowed:
            dims = f"{allowed.start}" if len(allowed) == 1 else f"{allowed.start} to {allowed.stop - 1}"
            raise SpecError("shape", list(self.shape), f"method {method!r} needs a tensor of {dims} dimensions")


Builder = Callable[[Mapping[str, Any], Geometry], Plan]


@dataclass(frozen=True)
class Method:
    """A catalogue entry: canonical name, aliases, parameters, formula, theory, source and how to build it."""

    name: str
    aliases: tuple[str, ...]
    params: tuple[Param, ...]
    formula: str
    theory: str
    reference: str
    build: Builder


# --- shared parameters -------------------------------------------------------------

_GAIN = Param("gain", "float", 1.0, "multiplicative scale", minimum=0.0)
_OPTIONAL_GAIN = Param("gain", "float", None, "explicit gain; default: derived from nonlinearity", minimum=0.0)
_NONLINEARITY = Param("nonlinearity", "str", None, "derive the gain from this activation", choices=NONLINEARITIES)
_SLOPE = Param("negative_slope", "float", None, "leaky_relu negative slope (default 0.01)", minimum=0.0)
_TRUNCATED_FALSE = Param("truncated", "bool", False, "use a normal truncated at ±2σ, rescaled by 1/0.8796 (Keras/JAX)")
_TRUNCATED_TRUE = Param("truncated", "bool", True, "truncated at ±2σ and rescaled (Keras/JAX default)")
_KAIMING = (
    Param("negative_slope", "float", 0.0, "negative slope of the rectifier after this layer (torch `a`)", minimum=0.0),
    Param("mode", "str", "fan_in", "fan_in preserves forward variance, fan_out backward", choices=("fan_in", "fan_out")),
    Param("nonlinearity", "str", "leaky_relu", "activation after this layer", choices=NONLINEARITIES),
    _OPTIONAL_GAIN,
)


def _xavier_gain(params: Mapping[str, Any]) -> float:
    if params["nonlinearity"] is None:
        if params["negative_slope"] is not None:
            raise SpecError("negative_slope", params["negative_slope"], "needs nonlinearity='leaky_relu'")
        return float(params["gain"])
    if params["gain"] != 1.0:
        raise SpecError("gain", params["gain"], "give either gain or nonlinearity, not both")
    return calculate_gain(params["nonlinearity"], params["negative_slope"])


def _normal(std: float, truncated: bool) -> Sampled:
    """N(0, std²), or Keras' truncated normal: σ = std / 0.8796…, truncated at ±2σ."""
    if not truncated:
        return Sampled(Normal(0.0, std))
    sigma = std / TRUNCATED_NORMAL_STD_2
    return Sampled(TruncatedNormal(0.0, sigma, -2.0 * sigma, 2.0 * sigma))


# --- builders ----------------------------------------------------------------------


def _constant(value: float) -> Plan:
    return Pattern(lambda i: np.full(i.shape, value), Theory(value, 0.0, value, value, exact=True))


def _uniform(p: Mapping[str, Any], g: Geometry) -> Plan:
    if not p["low"] < p["high"]:
        raise SpecError("high", p["high"], f"must be greater than low={p['low']!r}")
    return Sampled(Uniform(p["low"], p["high"]))


def _trunc_normal(p: Mapping[str, Any], g: Geometry) -> Plan:
    mean, std, low, high = p["mean"], p["std"], p["low"], p["high"]
    if p["bounds"] == "std":
        low, high = mean + low * std, mean + high * std
    if not low < high:
        raise SpecError("high", p["high"], f"must be greater than low={p['low']!r}")
    law = TruncatedNormal(mean, std, low, high)
    if law.mass() <= 0.0:
        raise SpecError("low", p["low"], "the interval [low, high] holds no probability under N(mean, std²)")
    return Sampled(law)


def _xavier_std(p: Mapping[str, Any], g: Geometry) -> float:
    fans = g.fans()
    return _xavier_gain(p) * math.sqrt(2.0 / float(fans.fan_in + fans.fan_out))


def _kaiming_gain(params: Mapping[str, Any]) -> float:
    gain = params["gain"]
    return float(gain) if gain is not None else calculate_gain(params["nonlinearity"], params["negative_slope"])


def _kaiming_std(p: Mapping[str, Any], g: Geometry) -> float:
    fans = g.fans()
    fan = fans.fan_in if p["mode"] == "fan_in" else fans.fan_out
    return _kaiming_gain(p) / math.sqrt(fan)


def _symmetric_uniform(std: float) -> Sampled:
    bound = math.sqrt(3.0) * std
    return Sampled(Uniform(-bound, bound))


def _variance_scaling(p: Mapping[str, Any], g: Geometry) -> Plan:
    fans = g.fans()
    fan = {
        "fan_in": fans.fan_in,
        "fan_out": fans.fan_out,
        "fan_avg": (fans.fan_in + fans.fan_out) / 2.0,
        "fan_geo_avg": math.sqrt(fans.fan_in * fans.fan_out),
    }[p["mode"]]
    scale = p["scale"] / max(1.0, fan)
    if p["distribution"] == "uniform":
        limit = math.sqrt(3.0 * scale)
        return Sampled(Uniform(-limit, limit))
    return _normal(math.sqrt(scale), p["distribution"] == "truncated_normal")


def _lecun(distribution: str) -> Builder:
    def build(p: Mapping[str, Any], g: Geometry) -> Plan:
        chosen = "truncated_normal" if distribution == "normal" and p["truncated"] else distribution
        return _variance_scaling({"scale": 1.0, "mode": "fan_in", "distribution": chosen}, g)

    return build


_BAND = 256  # rows of the Gaussian matrix generated at a time


def _gaussian_trapezoid(key: Key, rows: int, cols: int) -> np.ndarray:
    """The N(0, 1) entries of the row-major rows × cols matrix that Stewart's construction reads, zeros elsewhere.

    Column k of the tall matrix (the transpose when rows < cols) is read from the diagonal down, so only the
    lower trapezoid (column ≤ row) is generated when rows ≥ cols, the upper one (column ≥ row) otherwise — in
    bands of :data:`_BAND` rows, about half of a square matrix. Entry (r, c) is value ``r · cols + c`` of the
    words (the compiled kernel, in parallel), as in the whole matrix.
    """
    out = np.zeros((rows, cols))
    normal = Sampled(Normal(0.0, 1.0))
    for r0 in range(0, rows, _BAND):
        r1 = min(rows, r0 + _BAND)
        c0, c1 = (0, min(r1, cols)) if rows >= cols else (min(r0, cols), cols)
        out[r0:r1, c0:c1] = normal.region(key, (rows, cols), ((r0, r1), (c0, c1)), "float64")
    return out


def _orthogonal_matrix(key: Key, rows: int, cols: int, gain: float) -> np.ndarray:
    """gain · Q, Q with orthonormal columns from a Gaussian rows × cols matrix (transposed when rows < cols).

    Stewart's construction, :func:`initserve.core.linalg.orthonormal_columns`: Haar-distributed like
    torch's QR-based ``orthogonal_``.
    """
    if rows * cols == 0:
        return np.zeros((rows, cols))
    gaussian = _gaussian_trapezoid(key, rows, cols)
    q = linalg.orthonormal_columns(gaussian.T).T if rows < cols else linalg.orthonormal_columns(gaussian)
    if gain != 1.0:  # (× 1 changes no bit)
        q *= gain
    return q


def _orthogonal(p: Mapping[str, Any], g: Geometry) -> Plan:
    g.require_ndim("orthogonal", range(2, 9))
    rows, *rest = g.canonical
    cols = math.prod(rest)
    gain = p["gain"]
    variance = gain * gain / max(rows, cols, 1)
    return Dense(lambda key: _orthogonal_matrix(key, rows, cols, gain), Theory(0.0, variance, -gain, gain),
                 (rows, cols), gain)


def _sparse(p: Mapping[str, Any], g: Geometry) -> Plan:
    g.require_ndim("sparse", range(2, 3))
    rows, cols = g.canonical
    std, zeros = p["std"], math.ceil(p["sparsity"] * rows)

    def build(key: Key) -> np.ndarray:
        values = Normal(0.0, std).sample(words(key, 0, rows * cols)).reshape(rows, cols)
        priority = words(key, 0, rows * cols, SUBSTREAM_SPARSE).reshape(rows, cols)
        zero_rows = np.argsort(priority, axis=0, kind="stable")[:zeros]
        np.put_along_axis(values, zero_rows, 0.0, axis=0)
        return values

    kept = (rows - zeros) / rows if rows else 0.0
    return Dense(build, Theory(0.0, std * std * kept, -math.inf, math.inf), (rows, cols), NORMAL_MAX_Z * std)


def _exact_theory(value: float, count: int, numel: int) -> Theory:
    """Mean and variance of a tensor holding ``count`` entries ``value`` and zeros elsewhere."""
    if numel == 0:
        return Theory(0.0, 0.0, 0.0, 0.0, exact=True)
    mean = value * count / numel
    return Theory(mean, value * value * count / numel - mean * mean, min(0.0, value), max(0.0, value), exact=True)


def _eye(p: Mapping[str, Any], g: Geometry) -> Plan:
    g.require_ndim("eye", range(2, 3))
    rows, cols = g.canonical
    gain = p["gain"]

    def pattern(i: np.ndarray) -> np.ndarray:
        return np.where(i // cols == i % cols, gain, 0.0) if cols else np.zeros(i.shape)

    return Pattern(pattern, _exact_theory(gain, min(rows, cols), rows * cols))


def _dirac(p: Mapping[str, Any], g: Geometry) -> Plan:
    g.require_ndim("dirac", range(3, 6))
    out_channels, in_channels, *kernel = g.canonical
    groups = p["groups"]
    if out_channels % groups:
        raise SpecError("groups", groups, f"must divide the number of output channels ({out_channels})")
    per_group = out_channels // groups
    kernel_size = math.prod(kernel)
    center = int(np.ravel_multi_index([k // 2 for k in kernel], kernel)) if kernel_size else 0

    def pattern(i: np.ndarray) -> np.ndarray:
        o, rest = np.divmod(i, in_channels * kernel_size)
        c, k = np.divmod(rest, kernel_size)
        ones: np.ndarray = ((k == center) & (c == o % per_group)).astype(np.float64)
        return ones

    count = groups * min(per_group, in_channels) if kernel_size else 0
    return Pattern(pattern, _exact_theory(1.0, count, g.numel))


def _delta_orthogonal(p: Mapping[str, Any], g: Geometry) -> Plan:
    g.require_ndim("delta_orthogonal", range(3, 6))
    out_channels, in_channels, *kernel = g.canonical
    if in_channels > out_channels:
        raise SpecError("shape", list(g.shape), "delta_orthogonal needs in_channels <= out_channels")
    center: tuple[int | slice, ...] = (slice(None), slice(None), *((k - 1) // 2 for k in kernel))  # JAX's centre
    gain = p["gain"]

    def build(key: Key) -> np.ndarray:
        tensor = np.zeros(g.canonical)
        if tensor.size:
            tensor[center] = _orthogonal_matrix(key, out_channels, in_channels, gain)
        return tensor

    variance = gain * gain / max(out_channels * math.prod(kernel), 1)
    return Dense(build, Theory(0.0, variance, -gain, gain), (out_channels, in_channels), gain)


METHODS: tuple[Method, ...] = (
    Method("zeros", (), (), "W = 0", "mean 0, variance 0 (exact)", "torch.nn.init.zeros_", lambda p, g: _constant(0.0)),
    Method("ones", (), (), "W = 1", "mean 1, variance 0 (exact)", "torch.nn.init.ones_", lambda p, g: _constant(1.0)),
    Method("constant", (), (Param("value", "float", REQUIRED, "the fill value"),), "W = value", "mean value, variance 0 (exact)",
            "torch.nn.init.constant_", lambda p, g: _constant(p["value"])),
    Method("uniform", ("random_uniform",),
            (Param("low", "float", 0.0, "lower bound (torch `a`)"), Param("high", "float", 1.0, "upper bound (torch `b`)")),
            "W ~ U[low, high)", "mean (low+high)/2, variance (high−low)²/12, support [low, high]", "torch.nn.init.uniform_", _uniform),
    Method("normal", ("random_normal",),
            (Param("mean", "float", 0.0, "mean"), Param("std", "float", 1.0, "standard deviation", minimum=0.0)),
            "W ~ N(mean, std²)", "mean, std², unbounded support", "torch.nn.init.normal_",
            lambda p, g: Sampled(Normal(p["mean"], p["std"]))),
    Method("trunc_normal", ("truncated_normal",),
            (Param("mean", "float", 0.0, "mean of the parent normal"),
             Param("std", "float", 1.0, "std of the parent normal", minimum=0.0, exclusive_minimum=True),
             Param("low", "float", -2.0, "lower cut-off (torch `a`)"),
             Param("high", "float", 2.0, "upper cut-off (torch `b`)"),
             Param("bounds", "str", "absolute", "absolute values (torch) or multiples of std around mean (Keras/JAX)",
                   choices=("absolute", "std"))),
            "W ~ N(mean, std²) restricted to [low, high]", "truncated-normal moments: μ + σ(φ(α)−φ(β))/Z, σ²[1 + (αφ(α)−βφ(β))/Z − ((φ(α)−φ(β))/Z)²], support [low, high]", "torch.nn.init.trunc_normal_", _trunc_normal),
    Method("xavier_uniform", ("glorot_uniform",), (_GAIN, _NONLINEARITY, _SLOPE),
            "W ~ U[−a, a], a = gain·√3·√(2/(fan_in+fan_out))", "mean 0, variance gain²·2/(fan_in+fan_out), support [−a, a]",
            "Glorot & Bengio 2010; torch.nn.init.xavier_uniform_",
            lambda p, g: _symmetric_uniform(_xavier_std(p, g))),
    Method("xavier_normal", ("glorot_normal",), (_GAIN, _NONLINEARITY, _SLOPE, _TRUNCATED_FALSE),
            "W ~ N(0, std²), std = gain·√(2/(fan_in+fan_out))", "mean 0, variance gain²·2/(fan_in+fan_out) (also when truncated)",
            "Glorot & Bengio 2010; torch.nn.init.xavier_normal_ (truncated: keras glorot_normal)",
            lambda p, g: _normal(_xavier_std(p, g), p["truncated"])),
    Method("kaiming_uniform", ("he_uniform",), _KAIMING,
            "W ~ U[−b, b], b = gain·√3/√fan, gain = calculate_gain(nonlinearity, negative_slope)", "mean 0, variance gain²/fan, support [−b, b]",
            "He et al. 2015; torch.nn.init.kaiming_uniform_",
            lambda p, g: _symmetric_uniform(_kaiming_std(p, g))),
    Method("kaiming_normal", ("he_normal",), (*_KAIMING, _TRUNCATED_FALSE),
            "W ~ N(0, std²), std = gain/√fan", "mean 0, variance gain²/fan (also when truncated)",
            "He et al. 2015; torch.nn.init.kaiming_normal_ (truncated: keras he_normal)",
            lambda p, g: _normal(_kaiming_std(p, g), p["truncated"])),
    Method("lecun_uniform", (), (), "W ~ U[−l, l], l = √(3/fan_in)", "mean 0, variance 1/fan_in, support [−l, l]",
            "LeCun et al. 1998; keras/jax lecun_uniform", _lecun("uniform")),
    Method("lecun_normal", (), (_TRUNCATED_TRUE,), "W ~ N(0, 1/fan_in), truncated at ±2σ by default", "mean 0, variance 1/fan_in",
            "LeCun et al. 1998; keras/jax lecun_normal", _lecun("normal")),
    Method("variance_scaling", (),
            (Param("scale", "float", 1.0, "variance multiplier", minimum=0.0, exclusive_minimum=True),
             Param("mode", "str", "fan_in", "which fan divides scale",
                   choices=("fan_in", "fan_out", "fan_avg", "fan_geo_avg")),
             Param("distribution", "str", "truncated_normal", "law of the values",
                   choices=("truncated_normal", "normal", "uniform"))),
            "Var(W) = scale / fan", "mean 0, variance scale/fan; uniform support [−√(3·scale/fan), √(3·scale/fan)]", "keras.initializers.VarianceScaling; jax.nn.initializers.variance_scaling",
            _variance_scaling),
    Method("orthogonal", (), (_GAIN,), "W = gain·Q, Q from QR of a Gaussian matrix, diag(R) > 0", "mean 0, variance gain²/max(rows, cols); W·Wᵀ = gain²·I (or Wᵀ·W)",
            "Saxe et al. 2014; torch.nn.init.orthogonal_", _orthogonal),
    Method("sparse", (),
            (Param("sparsity", "float", REQUIRED, "fraction of each column set to zero", minimum=0.0, maximum=1.0),
             Param("std", "float", 0.01, "std of the non-zero values", minimum=0.0)),
            "W ~ N(0, std²), then ⌈sparsity·rows⌉ zeros in every column", "mean 0, variance std²·(rows − ⌈sparsity·rows⌉)/rows; exact zero count per column",
            "Martens 2010; torch.nn.init.sparse_", _sparse),
    Method("eye", ("identity",), (_GAIN,), "W = gain·I (2-D)", "exact: min(rows, cols) entries equal gain, the rest 0", "torch.nn.init.eye_", _eye),
    Method("dirac", (), (Param("groups", "int", 1, "number of groups (channels are split evenly)", minimum=1),),
            "W[g·n + d, d, centre] = 1 (3-5-D)", "exact: groups·min(out/groups, in) ones, the rest 0", "torch.nn.init.dirac_", _dirac),
    Method("delta_orthogonal", (), (_GAIN,), "W[:, :, centre] = gain·Q, zeros elsewhere (3-5-D)", "mean 0, variance gain²/(out·kernel size); centre slice orthogonal",
            "Xiao et al. 2018; jax.nn.initializers.delta_orthogonal", _delta_orthogonal),
)

_BY_NAME = {name: m for m in METHODS for name in (m.name, *m.aliases)}


def effective_gain(method: str, params: Mapping[str, Any]) -> float | None:
    """The gain a resolved method applies (``None`` for methods without one)."""
    if method.startswith("xavier_"):
        return _xavier_gain(params)
    if method.startswith("kaiming_"):
        return _kaiming_gain(params)
    return float(params["gain"]) if "gain" in params else None


def lookup(method: str) -> Method:
    """The method named ``method`` (canonical name or alias)."""
    try:
        return _BY_NAME[method]
    except (KeyError, TypeError):
        raise SpecError("method", method, f"unknown method; known: {', '.join(sorted(_BY_NAME))}") from None
