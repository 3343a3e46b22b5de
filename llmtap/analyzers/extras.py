"""Optional dependencies of the analyzers: import one, or say in one line which extra brings it."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final

REPORTS_HINT: Final = "pip install 'llmtap[reports]'"


class MissingExtra(ValueError):
    """An optional dependency is not installed; the message names the extra that brings it.

    A ValueError, so the commands and tools that report bad input report it in one line.
    """


def optional(module: str, what: str, hint: str = REPORTS_HINT) -> ModuleType:
    """Return the imported ``module``; raise MissingExtra ("``what`` needs ...") without it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{what} needs the reports extra: {hint}") from None
