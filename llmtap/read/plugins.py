"""Read functions that plugins publish: one declaration becomes an ``llmtap`` subcommand and an
HTTP route of ``llmtap serve``.

A plugin publishes a :class:`PluginRead` under the entry-point group ``llmtap.reads``. Its
``read(client, args, now)`` answers JSON from Redis (with :mod:`llmtap.read.ranges`, for
example); its :class:`~llmtap.read.params.Param` s (the HTTP API's own) are the arguments,
parsed the same way on both surfaces.
``llmtap <name> --hours 24 --json`` runs it from the command line (``--url`` as for the other
read commands) and ``GET /api/v1/x/<name>?hours=24`` from the API, behind the API's token. A
read that cannot load (import error, wrong type, a built-in command's name) is reported in one
line by name and the rest go on. See docs/plugins.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Final

import redis

from llmtap import keys
from llmtap.read.params import Param

ENTRY_POINT_GROUP: Final = "llmtap.reads"
PARAM_TYPES: Final = ("number", "integer", "string", "boolean")  # what a command option can be

__all__ = ["ENTRY_POINT_GROUP", "Param", "PluginRead", "ReadCatalogue", "discover"]

# client, the parsed arguments by name, the current time (epoch seconds) -> a JSON value.
ReadFunction = Callable[[redis.Redis, Mapping[str, Any], float], Any]


@dataclass(frozen=True)
class PluginRead:
    """A plugin's read function and how to reach it (see the module docstring)."""

    name: str
    summary: str
    read: ReadFunction
    params: tuple[Param, ...] = field(default=())

    def __post_init__(self) -> None:
        keys.check_plugin_name(self.name)
        if not callable(self.read):
            raise ValueError(f"plugin read {self.name!r}: read must be callable")
        for param in self.params:
            if param.type not in PARAM_TYPES or not param.name.isidentifier():
                raise ValueError(
                    f"plugin read {self.name!r}, parameter {param.name!r}: an identifier of "
                    f"type {' or '.join(PARAM_TYPES)}"
                )

    @property
    def path(self) -> str:
        """The HTTP route: ``/api/v1/x/<name>``."""
        return f"/api/v1/x/{self.name}"


@dataclass(frozen=True)
class ReadCatalogue:
    """The plugin reads that loaded, and one line per plugin read that did not."""

    reads: tuple[PluginRead, ...]
    problems: tuple[str, ...]


def discover(reserved: frozenset[str] = frozenset()) -> ReadCatalogue:
    """Load every ``llmtap.reads`` entry point; names in ``reserved`` (built-in commands) and
    anything that is not a :class:`PluginRead` of its own name become problems, not errors."""
    reads: list[PluginRead] = []
    problems: list[str] = []
    seen: set[str] = set()
    for point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        where = f"plugin read {point.name!r} ({point.value})"
        try:
            found = point.load()
        except Exception as exc:  # a plugin's import error must not stop the others
            problems.append(f"{where} cannot load: {type(exc).__name__}: {exc}")
            continue
        if not isinstance(found, PluginRead):
            problems.append(f"{where} is a {type(found).__name__}, not a PluginRead")
        elif found.name != point.name:
            problems.append(f"{where} declares the name {found.name!r}")
        elif point.name in reserved:
            problems.append(f"{where} has the name of a built-in command")
        elif point.name in seen:
            problems.append(f"{where} is published twice")
        else:
            seen.add(point.name)
            reads.append(found)
    return ReadCatalogue(tuple(reads), tuple(problems))
