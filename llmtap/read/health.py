"""Health and counters of the worker groups, read from Redis (for the CLI and compose).

A consumer is alive while its heartbeat key exists (it expires ``heartbeat_ttl_s`` after the
last refresh). A group's counters live in ``keys.stats(group)``; lag and pending come from
XINFO GROUPS; the dead-letter stream's length from XLEN.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

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
    names = list(client.scan_iter(match=keys.heartbeat_pattern(group), count=1000))
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
    shard when ``stream`` is shard 0's events stream (counters, lag and pending summed;
    consumers: the most on one shard, as every replica has one consumer per shard)."""
    merged = shards.hgetall_many(client, [keys.stats(group)])[0]
    counters = {_text(k): int(v) for k, v in merged.items()}
    count = shards.shard_count(client) if stream == keys.EVENTS else 1
    info = _merged_info(
        [_group_info(client, group, keys.on_shard(stream, k)) for k in range(count)]
    )
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
    every shard when ``stream`` is shard 0's)."""
    count = shards.shard_count(client) if stream == keys.EVENTS else 1
    pipe = client.pipeline(transaction=False)
    for shard in range(count):
        pipe.xlen(keys.on_shard(stream, shard))
        pipe.xlen(keys.dlq_stream(shard))
    lengths = [int(n) for n in pipe.execute()]
    return {"stream_length": sum(lengths[0::2]), "dlq_length": sum(lengths[1::2])}


def _merged_info(infos: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """One shard's group info as it is; several summed (lag None if any shard's is)."""
    found = [info for info in infos if info is not None]
    if len(infos) == 1 or not found:
        return found[0] if found else None
    lags = [info.get("lag") for info in found]
    return {
        "lag": None if None in lags else sum(int(str(lag)) for lag in lags),
        "pending": sum(int(info["pending"]) for info in found),
        "consumers": max(int(info["consumers"]) for info in found),
    }


def _group_info(client: redis.Redis, group: str, stream: str) -> dict[str, Any] | None:
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:  # no such stream yet
        return None
    for info in groups:
        if _text(info["name"]) == group:
            return dict(info)
    return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
