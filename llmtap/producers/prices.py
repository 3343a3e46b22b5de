"""Builds a producer's :class:`CostCalculator`: reads the override file and the clock, which
the pure pricing in :mod:`llmtap.analyzers.pricing` is given rather than reading itself."""

from __future__ import annotations

from datetime import UTC, datetime

from llmtap.analyzers.pricing import CostCalculator, Overrides, PricingError, parse_overrides
from llmtap.settings import Settings


def read_overrides(path: str) -> Overrides:
    """Return the override rates in the JSON file ``path``.

    Raises :class:`PricingError` naming the path when it cannot be read or is not a valid
    override file.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise PricingError(f"pricing overrides {path}: cannot read: {exc.strerror}") from exc
    return parse_overrides(path, raw)


def load_pricing(settings: Settings, now: datetime | None = None) -> CostCalculator:
    """Return a calculator for ``settings`` (prices file, Ollama rate) priced at ``now``
    (default: the current time).

    Raises :class:`PricingError` for a bad prices file and ``ValueError`` for a bad Ollama rate.
    """
    path = settings.prices_file
    overrides = read_overrides(path) if path is not None else None
    at = now if now is not None else datetime.now(tz=UTC)
    return CostCalculator(overrides, settings.ollama_usd_per_hour, at=at)
