"""The units convention: JSON carries base units (seconds, USD, fractions, ISO-8601 UTC times)
and people see milliseconds, dollars and percentages. These functions are the human renderings.

A field's unit follows from its name (see docs/reports-and-tools.md#units): ``*_usd`` is USD,
``*_s`` and the latency fields are seconds, ``*_rate`` and ``*_share`` are fractions (0 to 1),
``*_pct`` is a percentage (0 to 100), ``*_at`` an ISO-8601 UTC time.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Final

#: Seconds under names that do not end in ``_s`` (the original profiler's and the sketches').
SECONDS_FIELDS: Final = frozenset(
    {"avg_latency", "p50_latency", "p95_latency", "p99_latency", "latency", "mean", "min", "max",
     "p50", "p95", "p99", "ttft"}
)  # fmt: skip
FRACTION_SUFFIXES: Final = ("_rate", "_share")


def iso(ts: float) -> str:
    """Return Unix seconds as an ISO-8601 UTC time with a ``Z`` (whole seconds)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ms(seconds: float | None) -> str:
    """Return seconds as milliseconds for people: ``1,234 ms``, ``45.3 ms``, ``0.85 ms``."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    value = seconds * 1000
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f} ms"


def usd(amount: float | None) -> str:
    """Return USD for people: cents from $1 up, else up to three significant digits
    (``$0.25``, ``$0.0123``, ``$0.0000452``)."""
    if amount is None or not math.isfinite(amount):
        return "-"
    size = abs(amount)
    if size >= 1 or size == 0:
        return f"{'-' if amount < 0 else ''}${size:,.2f}"
    digits = min(9, 2 - math.floor(math.log10(size)))
    shown = f"{size:.{digits}f}".rstrip("0")
    if len(shown.partition(".")[2]) < 2:
        shown = f"{size:.2f}"
    return f"{'-' if amount < 0 else ''}${shown}"


def pct(fraction: float | None) -> str:
    """Return a fraction as a percentage for people: ``3.28%``, ``97.5%``."""
    if fraction is None or not math.isfinite(fraction):
        return "-"
    return f"{fraction:.2%}" if abs(fraction) < 0.1 else f"{fraction:.1%}"


def number(value: Any) -> str:
    """Return any other value for people: ``-`` for None, four significant digits for floats."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"


def human(name: str, value: Any) -> str:
    """Return ``value`` rendered for people by the unit its field ``name`` carries."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return number(value)
    if name.endswith(("_per_s", "_per_min")):
        return number(value)
    if name.endswith("_usd") or "_usd_per_" in name or name == "cost":
        return usd(value)
    if name.endswith("_s") or name in SECONDS_FIELDS:
        return ms(value)
    if name.endswith(FRACTION_SUFFIXES):
        return pct(value)
    if name.endswith("_pct"):
        return f"{value:.1f}%"
    return number(value)
