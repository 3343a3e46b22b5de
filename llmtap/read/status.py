"""Profiling status: the effective settings, the producers' exact statistics and the health of
the worker groups (stream and dead-letter lengths, lag, pending, live consumers)."""

from __future__ import annotations

from typing import Any, Final

import redis

from llmtap import aggregates, keys
from llmtap.read import health
from llmtap.read.admin import effective_settings
from llmtap.read.window import fraction
from llmtap.settings import Settings

_GROUP_FIELDS: Final = ("exists", "processed", "lag", "pending", "live_consumers")


def profiling_status(client: redis.Redis, settings: Settings | None = None) -> dict[str, Any]:
    """Return the effective configuration, the producers' statistics and pipeline health.

    ``statistics`` sums every live producer's latest rollup statistics (cumulative since each
    producer started); ``profiling_rate`` is the fraction of calls sent as call events.
    """
    current = effective_settings(client, settings)
    stats = producer_statistics(client)
    return {
        "enabled": current.enabled,
        "level": current.effective_level,
        "sampling_rate": current.sampling_rate,
        "settings": current.runtime_view(),
        "statistics": {
            **stats,
            "profiling_rate": fraction(stats["profiled_calls"], stats["total_calls"]),
        },
        "pipeline": pipeline_health(client),
    }


def producer_statistics(client: redis.Redis) -> dict[str, int]:
    """Return the summed statistics of every producer hash, and how many producers there are."""
    names = list(client.scan_iter(match=keys.producer("*"), count=1000))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hmget(name, aggregates.PRODUCER_STATS)
    totals = dict.fromkeys(aggregates.PRODUCER_STATS, 0)
    for values in pipe.execute() if names else []:
        for stat, value in aggregates.decode_producer_stats(values).items():
            totals[stat] += value
    return {**totals, "producers": len(names)}


def pipeline_health(client: redis.Redis) -> dict[str, Any]:
    """Return the stream and DLQ lengths and, per worker group, lag, pending and live workers."""
    workers: dict[str, dict[str, Any]] = {}
    for group in keys.EVENT_GROUPS:
        stats = health.group_stats(client, group)
        workers[group] = {k: stats[k] for k in _GROUP_FIELDS}
    for group in keys.OFF_STREAM_GROUPS:
        workers[group] = {"live_consumers": len(health.heartbeats(client, group))}
    return {
        **health.stream_stats(client),
        "workers": workers,
        "workers_seen": sum(int(w["live_consumers"]) for w in workers.values()),
    }
