"""Alerts over a range, from the alert worker's state hashes: firing now, fired and resolved in
the range, and the thresholds in force; and one alert's state, typed.

The state hashes hold every value as a string (Lua writes ``1.7961133433732471e+9``); the rows
here carry typed numbers and ISO-8601 UTC times instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

import redis

from llmtap import aggregates, keys
from llmtap.read.window import iso
from llmtap.settings import Settings

STATE_FIELDS: Final = ("rule", "status", "starts_at", "ends_at")
#: State-hash fields holding Unix seconds (shown as ISO-8601) and integers.
TIME_FIELDS: Final = frozenset({"since", "starts_at", "ends_at", "last_seen", "last_sent"})
INT_FIELDS: Final = frozenset({"seq"})


def alerts_summary(
    client: redis.Redis, since: float, until: float, settings: Settings
) -> dict[str, Any]:
    """Return the alerts firing now, fired and resolved in the range, and the thresholds.

    Reads the alert worker's state hashes; ``history_available`` is false when there are none.
    """
    states = _states(client)
    fired = [row for row, times in states if since <= times.get("starts_at", -1.0) < until]
    resolved = [
        row
        for row, times in states
        if row.get("status") == "resolved" and since <= times.get("ends_at", -1.0) < until
    ]
    return {
        "history_available": bool(states),
        "firing": [row for row, _ in states if row.get("status") == "firing"],
        "fired": fired,
        "resolved": resolved,
        "thresholds": {
            "daily_cost_usd": settings.cost_alert_usd,
            "latency_s": settings.latency_alert_s,
            "memory_mb": settings.memory_alert_mb,
        },
    }


def alert_states(client: redis.Redis) -> list[dict[str, Any]]:
    """Return every alert's fingerprint, rule, status, starts_at and ends_at (ISO-8601 UTC)."""
    return [row for row, _ in _states(client)]


def alert_state(client: redis.Redis, fingerprint: str) -> dict[str, Any]:
    """Return one alert's state: typed numbers, ISO-8601 times, the alert document decoded.

    Empty when the fingerprint is unknown.
    """
    raw = client.hgetall(keys.alert_state(fingerprint))
    if not raw:
        return {}
    fields = {aggregates.text(k): aggregates.text(v) for k, v in raw.items()}
    return {"fingerprint": fingerprint, **decode_state(fields)[0]}


def decode_state(fields: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, float]]:
    """Return a state hash as a typed row, and its times as Unix seconds (for range checks).

    ``doc`` is decoded from JSON; a value that does not parse is kept as its string.
    """
    row: dict[str, Any] = {}
    times: dict[str, float] = {}
    for name, value in sorted(fields.items()):
        if name in TIME_FIELDS and (ts := _seconds(value)) is not None:
            times[name] = ts
            row[name] = iso(ts)
        elif name in INT_FIELDS and value.lstrip("-").isdigit():
            row[name] = int(value)
        elif name == "doc":
            row[name] = _json(value)
        else:
            row[name] = value
    return row, times


def _states(client: redis.Redis) -> list[tuple[dict[str, Any], dict[str, float]]]:
    """Every alert state, found through their index (``keys.ALERT_STATES``, no SCAN) and read
    in the same round trip's pipeline; a member whose hash has just expired is skipped."""
    members: list[bytes | str] = client.zrange(keys.ALERT_STATES, 0, -1)  # type: ignore[assignment]
    fingerprints = [aggregates.text(fp) for fp in members]
    pipe = client.pipeline(transaction=False)
    for fingerprint in fingerprints:
        pipe.hmget(keys.alert_state(fingerprint), STATE_FIELDS)
    out = []
    for fingerprint, values in zip(
        fingerprints, pipe.execute() if fingerprints else [], strict=True
    ):
        pairs = zip(STATE_FIELDS, values, strict=True)
        fields = {k: aggregates.text(v) for k, v in pairs if v is not None}
        if not fields:
            continue
        row, times = decode_state(fields)
        out.append(({"fingerprint": fingerprint, **row}, times))
    return sorted(out, key=_order)


def _order(item: tuple[dict[str, Any], dict[str, float]]) -> tuple[float, str]:
    row, times = item
    return times.get("starts_at", math.inf), str(row["fingerprint"])


def _seconds(value: str) -> float | None:
    try:
        ts = float(value)
    except ValueError:
        return None
    return ts if math.isfinite(ts) and ts >= 0 else None


def _json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
