"""Health and counters of the worker groups, read from Redis (for the CLI and compose).

A consumer is alive while its heartbeat key exists (it expires ``heartbeat_ttl_s`` after the
last refresh). A group's counters live in ``keys.stats(group)``; lag and pending come from
XINFO GROUPS; the dead-letter stream's length from XLEN.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import redis

from llmtap import keys
from llmtap.notify import decode_heartbeat
from llmtap.read import shards


@dataclass(frozen=True)
class Health:
    """Whether a group has a live consumer, and a one-line reason."""

    healthy: bool
    reason: str


def check(client: redis.Redis, group: str, *, max_age_s: float, this_host: bool = False) -> Health:
    """Return whether ``group`` has a heartbeat younger than ``max_age_s``.

    With ``this_host``, only consumers named after this host count (one container's own
    check). Redis errors propagate.
    """
    prefix = f"{socket.gethostname()}-" if this_host else ""
    now = time.time()
    ages = [now - ts for name, ts in heartbeats(client, group) if name.startswith(prefix)]
    fresh = [age for age in ages if age <= max_age_s]
    where = " on this host" if this_host else ""
    if not fresh:
        return Health(False, f"no heartbeat for group {group}{where} in the last {max_age_s:g} s")
    return Health(
        True,
        f"{len(fresh)} live consumer(s) in group {group}{where}; "
        f"newest heartbeat {min(fresh):.1f} s ago",
    )


def heartbeats(client: redis.Redis, group: str) -> list[tuple[str, float]]:
    """Return (consumer, heartbeat time) for every unexpired heartbeat of ``group``."""
    names = list(client.scan_iter(match=keys.heartbeat_pattern(group), count=shards.SCAN_COUNT))
    if not names:
        return []
    values = client.mget(names)
    out: list[tuple[str, float]] = []
    prefix = keys.heartbeat(group, "")
    for name, value in zip(names, values, strict=True):
        beat = None if value is None else decode_heartbeat(value)
        if beat is not None:
            out.append((_text(name).removeprefix(prefix), beat.ts))
    return out


def group_stats(client: redis.Redis, group: str, stream: str = keys.EVENTS) -> dict[str, object]:
    """Return a group's counters, lag, pending, consumers and live heartbeats, over every
    shard when ``stream`` is a shard stream (counters, lag and pending summed; consumers: the
    most on one shard, as every replica has one consumer per shard; see
    :func:`llmtap.read.shards.group_infos`)."""
    merged = shards.hgetall_many(client, [keys.stats(group)])[0]
    counters = {_text(k): int(v) for k, v in merged.items()}
    info = shards.group_infos(client, stream).get(group)
    return {
        "group": group,
        "exists": info is not None,
        "processed": counters.get("processed", 0),
        "entries": counters.get("entries", 0),
        "dlq": counters.get("dlq", 0),
        "reclaimed": counters.get("reclaimed", 0),
        "duplicates": counters.get("duplicates", 0),
        "conflicts": counters.get("conflicts", 0),
        "commits": counters.get("commits", 0),
        "trimmed": counters.get("trimmed", 0),
        "lag": None if info is None else info.get("lag"),
        "pending": 0 if info is None else int(info["pending"]),
        "consumers": 0 if info is None else int(info["consumers"]),
        "live_consumers": len(heartbeats(client, group)),
    }


def stream_stats(client: redis.Redis, stream: str = keys.EVENTS) -> dict[str, int]:
    """Return the lengths of the events stream and of the dead-letter stream (summed over
    every shard when ``stream`` is a shard stream)."""
    length, dlq = shards.stream_lengths(client, [stream, keys.DLQ])
    return {"stream_length": length, "dlq_length": dlq}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
