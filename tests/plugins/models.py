"""Cost models the plugin tests name through LLMTAP_COST_MODEL (``tests.plugins.models:...``)."""

from __future__ import annotations

from llmtap.analyzers.pricing import CallUsage


def half_price(usage: CallUsage) -> float | None:
    """Half the catalogue price (None when the catalogue has none: the catalogue decides)."""
    listed = usage.catalogue_usd()
    return None if listed is None else listed / 2


half_price.name = "half-price"  # type: ignore[attr-defined]


def exploding(usage: CallUsage) -> float | None:
    """A model with a bug."""
    raise ZeroDivisionError("rate table is empty")
