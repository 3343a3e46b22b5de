"""Declared arguments of the HTTP API and of plugin reads: each endpoint lists its
:class:`Param` s once, and the same list parses a request (query string or JSON body), a plugin
command's options, and describes them in the OpenAPI page."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

TYPES: Final = ("number", "integer", "string", "boolean", "object")
_TRUE: Final = ("1", "true", "yes", "on")
_FALSE: Final = ("0", "false", "no", "off")


class BadArgument(ValueError):
    """A request argument that is missing, of the wrong type or out of range; names it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True)
class Param:
    """One argument: its JSON type, default, bounds or choices, and a description."""

    name: str
    type: str
    description: str
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] = ()

    def schema(self) -> dict[str, Any]:
        """Return the argument's JSON Schema (as OpenAPI 3.1 writes it)."""
        out: dict[str, Any] = {"type": self.type}
        for key, value in (("minimum", self.minimum), ("maximum", self.maximum)):
            if value is not None:
                out[key] = value
        if self.enum:
            out["enum"] = list(self.enum)
        if self.default is not None:
            out["default"] = self.default
        return out

    def parse(self, raw: Any) -> Any:
        """Return ``raw`` converted to the argument's type; raises BadArgument."""
        value = _convert(self, raw)
        if isinstance(value, float | int) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise BadArgument(self.name, f"must be at least {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                raise BadArgument(self.name, f"must be at most {self.maximum:g}")
        if self.enum and value not in self.enum:
            raise BadArgument(self.name, f"must be one of {', '.join(self.enum)}")
        return value


def parse_all(params: Sequence[Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Return every declared argument, parsed from ``given`` or defaulted.

    Raises BadArgument for an unknown name, a missing required one or a bad value.
    """
    known = {p.name for p in params}
    for name in given:
        if name not in known:
            expected = ", ".join(sorted(known)) or "none"
            raise BadArgument(name, f"unknown argument (expected: {expected})")
    out = {}
    for param in params:
        if param.name in given:
            out[param.name] = param.parse(given[param.name])
        elif param.required:
            raise BadArgument(param.name, "required")
        else:
            out[param.name] = param.default
    return out


def _convert(param: Param, raw: Any) -> Any:
    kind = param.type
    if kind == "string":
        if not isinstance(raw, str):
            raise BadArgument(param.name, "must be a string")
        return raw
    if kind == "boolean":
        return _boolean(param.name, raw)
    if kind == "object":
        if not isinstance(raw, dict):
            raise BadArgument(param.name, "must be an object")
        return raw
    return _number(param.name, raw, integer=kind == "integer")


def _boolean(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in _TRUE + _FALSE:
        return raw.lower() in _TRUE
    raise BadArgument(name, "must be true or false")


def _number(name: str, raw: Any, *, integer: bool) -> float | int:
    what = "an integer" if integer else "a number"
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise BadArgument(name, f"must be {what}")
    try:
        value = int(raw) if integer and not isinstance(raw, float) else float(raw)
    except ValueError:
        raise BadArgument(name, f"must be {what}, not {raw!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise BadArgument(name, "must be finite")
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise BadArgument(name, f"must be {what}")
        value = int(value)
    return value
