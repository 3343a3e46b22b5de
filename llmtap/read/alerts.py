"""Alerts over a range, from the alert worker's state hashes: firing now, fired and resolved in
the range, and the thresholds in force."""

from __future__ import annotations

from typing import Any, Final

import redis

from llmtap import aggregates, keys
from llmtap.settings import Settings

STATE_FIELDS: Final = ("rule", "status", "starts_at", "ends_at")


def alerts_summary(
    client: redis.Redis, since: float, until: float, settings: Settings
) -> dict[str, Any]:
    """Return the alerts firing now, fired and resolved in the range, and the thresholds.

    Reads the alert worker's state hashes; ``history_available`` is false when there are none.
    """
    states = alert_states(client)
    fired = [s for s in states if since <= _float(s.get("starts_at")) < until]
    resolved = [
        s
        for s in states
        if s.get("status") == "resolved" and since <= _float(s.get("ends_at")) < until
    ]
    return {
        "history_available": bool(states),
        "firing": [s for s in states if s.get("status") == "firing"],
        "fired": fired,
        "resolved": resolved,
        "thresholds": {
            "daily_cost_usd": settings.cost_alert_usd,
            "latency_s": settings.latency_alert_s,
            "memory_mb": settings.memory_alert_mb,
        },
    }


def alert_states(client: redis.Redis) -> list[dict[str, str]]:
    """Return every alert state hash (fingerprint, rule, status, starts_at, ends_at)."""
    names = list(client.scan_iter(match=keys.alert_state("*"), count=1000))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hmget(name, STATE_FIELDS)
    prefix = keys.alert_state("")
    out = []
    for name, values in zip(names, pipe.execute() if names else [], strict=True):
        state = {
            k: aggregates.text(v)
            for k, v in zip(STATE_FIELDS, values, strict=True)
            if v is not None
        }
        out.append({"fingerprint": aggregates.text(name).removeprefix(prefix), **state})
    return sorted(out, key=lambda s: (s.get("starts_at", ""), s["fingerprint"]))


def _float(value: str | None) -> float:
    try:
        return float(value) if value is not None else -1.0
    except ValueError:
        return -1.0
