"""Declared parameters of initialization methods, and their validation.

Each method declares its parameters once (name, kind, default, bounds, choices,
doc). The same declaration validates Python callers here and builds the HTTP
schema in ``initserve.api``: there is one source of truth for what a method
accepts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from initserve.core.errors import SpecError

REQUIRED: Any = object()  # sentinel default of a parameter that must be given
MAX_INT = 2**63 - 1
"""Integer parameters (sizes, counts, indices) fit in int64: past it numpy cannot hold them, and sizes past
float64's range made fan computations raise ``OverflowError``."""


@dataclass(frozen=True)
class Param:
    """One parameter: ``kind`` float/int/bool/str, or ints (one int or a list, normalised to a tuple).

    ``default`` ``None`` means optional and unset.
    """

    name: str
    kind: Literal["float", "int", "bool", "str", "ints"]
    default: Any
    doc: str
    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None
    choices: tuple[str, ...] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check(self, value: Any) -> Any:
        """Return ``value`` normalised to the parameter's kind, or raise :class:`SpecError`."""
        if value is None and self.default is None:
            return None
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise SpecError(self.name, value, "must be true or false")
            return value
        if self.kind == "str":
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise SpecError(self.name, value, f"must be one of: {', '.join(self.choices or ())}")
            return value
        if self.kind == "ints":
            items = value if isinstance(value, list | tuple) else [value]
            if not items or any(isinstance(n, bool) or not isinstance(n, int) for n in items):
                raise SpecError(self.name, value, "must be an integer or a non-empty list of integers")
            if any(abs(n) > MAX_INT for n in items):
                raise SpecError(self.name, value, "every entry must be within ±(2^63−1)")
            if self.minimum is not None and min(items) < self.minimum:
                raise SpecError(self.name, value, f"every entry must be >= {self.minimum:g}")
            return tuple(items)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(self.name, value, f"must be a number ({self.kind})")
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise SpecError(self.name, value, "must be an integer")
            value = int(value)
            if abs(value) > MAX_INT:
                raise SpecError(self.name, value, "must be within ±(2^63−1)")
        else:
            value = float(value)
            if not math.isfinite(value):
                raise SpecError(self.name, value, "must be a finite number (NaN and ±inf are refused)")
        below = self.minimum is not None and (value < self.minimum or (self.exclusive_minimum and value == self.minimum))
        if below:
            relation = ">" if self.exclusive_minimum else ">="
            raise SpecError(self.name, value, f"must be {relation} {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise SpecError(self.name, value, f"must be <= {self.maximum:g}")
        return value


def resolve_params(method: str, declared: tuple[Param, ...], given: Mapping[str, Any],
                   owner: str = "method") -> dict[str, Any]:
    """Validate ``given`` against ``declared`` and fill defaults (unknown names are errors).

    ``owner`` names what declares them in messages ("method 'normal'", "layer type 'linear'").
    """
    names = {p.name for p in declared}
    for name in given:
        if name not in names:
            accepted = ", ".join(sorted(names)) or "none"
            raise SpecError(name, given[name], f"unknown parameter for {owner} {method!r}; accepted: {accepted}")
    resolved: dict[str, Any] = {}
    for param in declared:
        if param.name in given:
            resolved[param.name] = param.check(given[param.name])
        elif param.required:
            raise SpecError(param.name, None, f"is required by {owner} {method!r}")
        else:
            resolved[param.name] = param.default
    return resolved
