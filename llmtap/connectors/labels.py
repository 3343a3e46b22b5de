"""Bounded label cardinality: the busiest values keep their own label, the rest share "other".

Pure: the caller passes the weights (month-to-date calls), so every replica picks the same set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

OTHER: Final = "other"


def capped(weights: Mapping[str, float], limit: int) -> dict[str, str]:
    """Return value -> label: the ``limit`` heaviest values (ties by name) keep their name,
    every other value is labelled :data:`OTHER`. ``limit`` 0 puts everything in ``other``."""
    ranked = sorted(weights, key=lambda name: (-weights[name], name))
    kept = set(ranked[:limit])
    return {name: name if name in kept else OTHER for name in weights}
