"""The time windows the read side answers for: hours back from "now", and UTC timestamps."""

from __future__ import annotations

import time
from typing import Final

from llmtap.analyzers import units

HOUR: Final = 3600
DAY: Final = 86_400


def iso(ts: float) -> str:
    """Return a Unix time as an ISO 8601 UTC string with a ``Z``."""
    return units.iso(ts)


def until(now: float | None) -> float:
    """Return ``now``, or the clock's Unix time when it is None."""
    return time.time() if now is None else now


def hours_back(hours: float, now: float | None) -> tuple[float, float]:
    """Return the range ``[now - hours, now)`` (``now`` defaults to the clock)."""
    end = until(now)
    return end - hours * HOUR, end


def fraction(part: float, whole: float) -> float:
    """Return ``part`` as a fraction of ``whole`` (0 when ``whole`` is 0): JSON carries
    fractions, people see percentages (see :mod:`llmtap.analyzers.units`)."""
    return part / whole if whole else 0.0
