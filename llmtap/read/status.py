"""Profiling status: the settings in force, what each producer reports it runs with, the
producers' exact statistics and the health of the worker groups (stream and dead-letter lengths,
lag, pending, live consumers)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import redis

from llmtap import aggregates, keys
from llmtap.notify import decode_heartbeat
from llmtap.read import health, shards
from llmtap.read.admin import effective_settings
from llmtap.read.window import fraction, iso
from llmtap.settings import Settings

_FIELDS: Final = (*aggregates.PRODUCER_STATS, *aggregates.PRODUCER_SETTINGS, "window_end")


@shards.reads_one_layout
def profiling_status(client: redis.Redis, settings: Settings | None = None) -> dict[str, Any]:
    """Return the settings producers run with, their statistics and pipeline health.

    ``enabled``, ``level`` and ``sampling_rate`` are what the live producers report when they
    agree (``settings_source: "producers"``), else the configured settings (the environment
    plus the runtime-settings hash, ``settings``). ``producers`` lists each live producer;
    ``settings_disagreements`` names every setting on which producers differ from each other
    or from the configured value. ``statistics`` sums every live producer's latest rollup
    statistics (cumulative since each producer started); ``profiling_rate`` is the fraction
    of calls sent as call events.
    """
    current = effective_settings(client, settings)
    rows = producers(client)
    configured = configured_values(current)
    disagreements = settings_disagreements(configured, rows)
    reported = {s: _agreed(rows, s) for s in aggregates.PRODUCER_SETTINGS}
    stats = _sum_statistics(rows)
    return {
        **{s: configured[s] if reported[s] is None else reported[s] for s in configured},
        "settings_source": "producers" if all(v is not None for v in reported.values())
        else "configured",
        "settings": current.runtime_view(),
        "settings_disagreements": disagreements,
        "statistics": {
            **stats,
            "profiling_rate": fraction(stats["profiled_calls"], stats["total_calls"]),
        },
        "producers": rows,
        "pipeline": pipeline_health(client),
    }  # fmt: skip


def configured_values(settings: Settings) -> dict[str, Any]:
    """Return the configured ``enabled``, effective ``level`` and ``sampling_rate``."""
    return {
        "enabled": settings.enabled,
        "level": settings.effective_level,
        "sampling_rate": settings.sampling_rate,
    }


def producers(client: redis.Redis) -> list[dict[str, Any]]:
    """Return every live producer of every shard: its id, statistics, reported settings (None
    when it does not report them) and the end of its latest rollup window (ISO-8601), by id.

    A producer has one hash, on the shard its id maps to; after ``LLMTAP_SHARDS`` changed it
    may have one on its old shard too, and its newest (latest window end) is the one listed.
    """
    names = shards.scan_names(client, keys.producer("*"))
    pipe = client.pipeline(transaction=False)
    for _, name in names:
        pipe.hmget(name, _FIELDS)
    n_stats, n_settings = len(aggregates.PRODUCER_STATS), len(aggregates.PRODUCER_SETTINGS)
    found: dict[str, tuple[float, dict[str, Any]]] = {}
    for (shard, name), values in zip(names, pipe.execute() if names else [], strict=True):
        end = values[-1]
        producer_id = name.removeprefix(keys.on_shard(keys.producer(""), shard))
        row = {
            "producer_id": producer_id,
            **aggregates.decode_producer_stats(values[:n_stats]),
            **aggregates.decode_producer_settings(values[n_stats : n_stats + n_settings]),
            "last_rollup_at": iso(float(end)) if end is not None else None,
        }
        ended = float(end) if end is not None else -math.inf
        if producer_id not in found or ended > found[producer_id][0]:
            found[producer_id] = (ended, row)
    return [found[producer_id][1] for producer_id in sorted(found)]


def settings_disagreements(
    configured: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Return, per setting on which the reporting producers differ from each other or from
    ``configured``: the setting, the configured value and each producer's value."""
    out = []
    for setting in aggregates.PRODUCER_SETTINGS:
        values = {r["producer_id"]: r[setting] for r in rows if r[setting] is not None}
        if values and set(values.values()) != {configured[setting]}:
            out.append({"setting": setting, "configured": configured[setting], "producers": values})
    return out


def _agreed(rows: Sequence[Mapping[str, Any]], setting: str) -> Any:
    values = {r[setting] for r in rows if r[setting] is not None}
    return values.pop() if len(values) == 1 else None


def _sum_statistics(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    totals = {stat: sum(int(r[stat]) for r in rows) for stat in aggregates.PRODUCER_STATS}
    return {**totals, "producers": len(rows)}


def producer_statistics(client: redis.Redis) -> dict[str, int]:
    """Return the summed statistics of every producer hash, and how many producers there are."""
    return _sum_statistics(producers(client))


def pipeline_health(client: redis.Redis) -> dict[str, Any]:
    """Return the stream and DLQ lengths and, per worker group, lag, pending and live workers.

    The same numbers as :func:`llmtap.read.health.group_stats` per group (summed over every
    shard), read with one SCAN for every group's heartbeats and one XINFO GROUPS per shard (a
    SCAN per group walked the whole keyspace once per group).
    """
    beats = _live_consumers(client)
    info = shards.group_infos(client)
    known = {*keys.EVENT_GROUPS, *keys.OFF_STREAM_GROUPS}
    plugins = sorted(set(info) - known)  # plugin workers' groups (docs/plugins.md)
    on_stream = [*keys.EVENT_GROUPS, *plugins]
    processed = shards.hmget_many(client, [keys.stats(g) for g in on_stream], ["processed"])
    rows: dict[str, dict[str, Any]] = {}
    for group, (done,) in zip(on_stream, processed, strict=True):
        found = info.get(group)
        rows[group] = {
            "exists": found is not None,
            "processed": int(done or 0),
            "lag": None if found is None else found.get("lag"),
            "pending": 0 if found is None else int(found["pending"]),
            "live_consumers": beats.get(group, 0),
        }
    workers = {group: rows[group] for group in keys.EVENT_GROUPS}
    for group in keys.OFF_STREAM_GROUPS:
        workers[group] = {"live_consumers": beats.get(group, 0)}
    workers.update((group, rows[group]) for group in plugins)
    return {
        **health.stream_stats(client),
        "workers": workers,
        "workers_seen": sum(int(w["live_consumers"]) for w in workers.values()),
    }


def _live_consumers(client: redis.Redis) -> dict[str, int]:
    """Return group -> consumers with an unexpired, readable heartbeat."""
    prefix = keys.heartbeat("", "")[:-1]  # "<heartbeat prefix>:"
    names = list(client.scan_iter(match=f"{prefix}*", count=shards.SCAN_COUNT))
    out: dict[str, int] = {}
    for name, value in zip(names, client.mget(names) if names else [], strict=True):
        group = aggregates.text(name).removeprefix(prefix).partition(":")[0]
        if value is not None and decode_heartbeat(value) is not None:
            out[group] = out.get(group, 0) + 1
    return out
