"""Every Redis stream, consumer group and key name llmtap uses, with their TTLs.

The layout is a public API (users read the hashes directly); ``LAYOUT_VERSION`` changes
whenever a name or a field's meaning changes. No other module builds a key by hand.
"""

from __future__ import annotations

from typing import Final

LAYOUT_VERSION: Final = 1
PREFIX: Final = "llmtap"

# Streams
EVENTS: Final = f"{PREFIX}:events"
DLQ: Final = f"{PREFIX}:dlq"
NOTIFY: Final = f"{PREFIX}:notify"

# The single field of an events entry: one event map, or an array of them.
FIELD_EVENT: Final = b"e"
FIELD_BATCH: Final = b"b"

# Consumer groups, one per worker kind.
GROUP_COST: Final = "cost"
GROUP_LATENCY: Final = "latency"
GROUP_ALERTS: Final = "alerts"
GROUP_SESSIONS: Final = "sessions"
GROUP_NOTIFIER: Final = "notifier"

# Runtime settings that every producer polls (a hash of setting name -> value).
RUNTIME_SETTINGS: Final = f"{PREFIX}:settings"
# Producer statistics, one hash per producer id, refreshed with every rollup.
PRODUCER_PREFIX: Final = f"{PREFIX}:producer:"
PRODUCER_TTL_S: Final = 24 * 3600

# Time granularities of the aggregates and how long each bucket is kept.
GRANULARITIES: Final = ("m", "h", "d")
BUCKET_SECONDS: Final = {"m": 60, "h": 3600, "d": 86400}
DEFAULT_TTL_S: Final = {"m": 2 * 86400, "h": 35 * 86400, "d": 400 * 86400}


def producer(producer_id: str) -> str:
    """Return the statistics hash of one producer."""
    return f"{PRODUCER_PREFIX}{producer_id}"
