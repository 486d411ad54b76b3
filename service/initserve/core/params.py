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


@dataclass(frozen=True)
class Param:
    """One parameter: ``kind`` float/int/bool/str, ``default`` (``None`` = optional, unset)."""

    name: str
    kind: Literal["float", "int", "bool", "str"]
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
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(self.name, value, f"must be a number ({self.kind})")
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise SpecError(self.name, value, "must be an integer")
            value = int(value)
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


def resolve_params(method: str, declared: tuple[Param, ...], given: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``given`` against ``declared`` and fill defaults (unknown names are errors)."""
    names = {p.name for p in declared}
    for name in given:
        if name not in names:
            accepted = ", ".join(sorted(names)) or "none"
            raise SpecError(name, given[name], f"unknown parameter for method {method!r}; accepted: {accepted}")
    resolved: dict[str, Any] = {}
    for param in declared:
        if param.name in given:
            resolved[param.name] = param.check(given[param.name])
        elif param.required:
            raise SpecError(param.name, None, f"is required by method {method!r}")
        else:
            resolved[param.name] = param.default
    return resolved
