"""Builds a producer's :class:`CostCalculator`: reads the override file and the clock, which
the pure pricing in :mod:`llmtap.analyzers.pricing` is given rather than reading itself."""

from __future__ import annotations

from datetime import UTC, datetime

from llmtap.analyzers.pricing import CostCalculator, Overrides, PricingError, parse_overrides
from llmtap.settings import Settings


def read_overrides(path: str) -> Overrides:
    """Return the override rates in the JSON file ``path``.

    Raises :class:`PricingError` naming the path when it is missing, cannot be read or is not
    a valid override file; its message is the one line every process shows for that file.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PricingError(f"pricing overrides {path}: cannot read: {reason}") from exc
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


def pricing_or_catalogue(
    settings: Settings, now: datetime | None = None
) -> tuple[CostCalculator, PricingError | None]:
    """Return the producer's calculator and, when the prices file could not be used, its error.

    A bad prices file (missing, unreadable, malformed) or Ollama rate does not stop a
    producer: it prices from the catalogue alone, and the caller reports the error. Raises
    nothing for bad pricing settings.
    """
    try:
        return load_pricing(settings, now), None
    except PricingError as exc:
        error = exc
    except ValueError as exc:
        error = PricingError(f"pricing: {exc}")
    at = now if now is not None else datetime.now(tz=UTC)
    try:
        return CostCalculator(None, settings.ollama_usd_per_hour, at=at), error
    except ValueError:  # the Ollama rate was the bad setting
        return CostCalculator(None, 0.0, at=at), error
