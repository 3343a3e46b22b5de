"""The raw reads behind ``/metrics``: one scrape's aggregates, summed over every shard.

The counters cover the current UTC month (the day hashes from the 1st to today, today's being
live), so they only grow until 00:00 UTC on the 1st, where they reset (``rate()`` and
``increase()`` handle a reset). The quantiles cover a short recent window of minute buckets.
One pipelined round trip reads the cost and usage day hashes, the groups' counters and the
latency indexes; one the stream lengths; one the groups; then two the latency hashes the
indexes named. Each goes through :mod:`llmtap.read.shards`, which reads every shard's copy
and merges them, so the numbers, their names and labels do not change with ``LLMTAP_SHARDS``;
with several shards each shard's stream lengths and lags are kept too (:class:`ShardHealth`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis

from llmtap import aggregates, keys
from llmtap.aggregates import TIMINGS
from llmtap.notify import decode_heartbeat
from llmtap.read import query, shards
from llmtap.read.fetch import Hash, fetch
from llmtap.read.window import DAY

Pair = tuple[str, str]
# The latency-hash fields of one timing the month's summaries need: weighted count and sum.
_TOTAL_STATS: Final = ("w", "sum")


@dataclass(frozen=True)
class ShardHealth:
    """One shard's events-stream and dead-letter lengths, and each event group's lag there
    (None: the group does not exist on the shard, or its lag is unknown)."""

    stream_length: int
    dlq_length: int
    lag: dict[str, int | None]


@dataclass
class Snapshot:
    """Everything one scrape reports, read at ``now``.

    ``costs``/``usage``: the month's summed cost and usage fields; ``errors``: its failed call
    events by ``<dimension>|<error_type>``. ``latency_totals``: per
    (backend, model) and timing, the month's (weighted count, weighted seconds). ``window``:
    per (backend, model) and timing, the merged sketch bins of the quantile window. ``groups``:
    per event group, its XINFO fields (None when the group does not exist) and its counters,
    all summed over the shards. ``shards``: each shard's own health, when there are several.
    """

    now: float
    month_start: int
    costs: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    latency_totals: dict[Pair, dict[str, tuple[float, float]]] = field(default_factory=dict)
    window: dict[Pair, dict[str, list[dict[int, float]]]] = field(default_factory=dict)
    stream_length: int = 0
    dlq_length: int = 0
    groups: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    shards: list[ShardHealth] = field(default_factory=list)


def month_start(now: float) -> int:
    """Return the Unix time of 00:00 UTC on the first day of ``now``'s month."""
    first = dt.datetime.fromtimestamp(now, dt.UTC).replace(day=1, hour=0, minute=0, second=0)
    return int(first.replace(microsecond=0).timestamp())


def snapshot(
    client: redis.Redis,
    now: float,
    window_s: float,
    groups: Sequence[str] = keys.EVENT_GROUPS,
) -> Snapshot:
    """Return the aggregates one scrape reports at ``now``, summed over every shard; redis
    errors propagate."""
    start = month_start(now)
    days = [keys.bucket("d", day) for day in range(start, keys.bucket_start("d", now) + 1, DAY)]
    covered = query.cover(now - window_s, now, shards.tiers_since(client))
    recent = [(g, keys.bucket(g, s)) for g, s in covered]
    hashes = [name for day in days for name in (keys.cost("d", day), keys.usage("d", day))]
    failed = [keys.errors("d", day) for day in days]
    sets = [keys.latency_index("d", day) for day in days]
    sets += [keys.latency_index(granularity, name) for granularity, name in recent]
    stats = [keys.stats(group) for group in groups]
    replies = fetch(client, [*hashes, *failed, *stats], sets)
    out = Snapshot(now=now, month_start=start)
    _sum_days(out, replies.hashes[: len(hashes)])
    out.errors = _summed(replies.hashes[len(hashes) : len(hashes) + len(failed)])
    counters = replies.hashes[len(hashes) + len(failed) :]
    out.counters = {g: aggregates.decode_counts(c) for g, c in zip(groups, counters, strict=True)}
    day_pairs = [(day, _pairs(m)) for day, m in zip(days, replies.sets[: len(days)], strict=True)]
    window = replies.sets[len(days) :]
    window_pairs = [(g, n, _pairs(m)) for (g, n), m in zip(recent, window, strict=True)]
    streams, dlqs = shards.stream_lengths_by_shard(client, [keys.EVENTS, keys.DLQ])
    out.stream_length, out.dlq_length = sum(streams), sum(dlqs)
    per_shard = shards.group_infos_by_shard(client)
    found = shards.merge_group_infos(per_shard)
    out.groups = {group: found.get(group) for group in groups}
    if len(per_shard) > 1:
        out.shards = [
            ShardHealth(length, dlq, {g: _lag(infos.get(g)) for g in groups})
            # Not strict: a worker may raise the shard count between the two reads.
            for length, dlq, infos in zip(streams, dlqs, per_shard, strict=False)
        ]
    _read_latency(client, out, day_pairs, window_pairs)
    return out


def _sum_days(out: Snapshot, replies: Sequence[Hash]) -> None:
    """Sum the days' cost hashes (even items) and usage hashes (odd) into ``out``."""
    out.costs, out.usage = _summed(replies[0::2]), _summed(replies[1::2])


def _summed(replies: Sequence[Hash]) -> dict[str, int]:
    """Return the integer fields of ``replies`` summed by name."""
    total: defaultdict[str, int] = defaultdict(int)
    for reply in replies:
        for name, value in aggregates.decode_counts(reply).items():
            total[name] += value
    return dict(total)


def _lag(info: dict[str, Any] | None) -> int | None:
    lag = None if info is None else info.get("lag")
    return None if lag is None else int(lag)


def _pairs(members: Any) -> list[Pair]:
    return sorted(aggregates.decode_latency_member(m) for m in members)


def _read_latency(
    client: redis.Redis,
    out: Snapshot,
    day_pairs: Sequence[tuple[str, Sequence[Pair]]],
    window_pairs: Sequence[tuple[str, str, Sequence[Pair]]],
) -> None:
    names = [aggregates.timing_field(t, s) for t in TIMINGS for s in _TOTAL_STATS]
    totals = [keys.latency("d", day, *pair) for day, pairs in day_pairs for pair in pairs]
    out.latency_totals = _month_totals(day_pairs, iter(shards.hmget_many(client, totals, names)))
    window = [keys.latency(g, name, *pair) for g, name, pairs in window_pairs for pair in pairs]
    replies = iter(fetch(client, window).hashes)
    for _, _, pairs in window_pairs:
        for pair in pairs:
            _, packed = aggregates.split_sketches(next(replies), TIMINGS)
            sketches = out.window.setdefault(pair, {t: [] for t in TIMINGS})
            for timing in TIMINGS:
                sketches[timing].append(aggregates.decode_sketch(packed.get(timing)))


def _month_totals(
    day_pairs: Sequence[tuple[str, Sequence[Pair]]], replies: Any
) -> dict[Pair, dict[str, tuple[float, float]]]:
    totals: dict[Pair, dict[str, list[float]]] = {}
    for _, pairs in day_pairs:
        for pair in pairs:
            values = [float(v or 0.0) for v in next(replies)]
            row = totals.setdefault(pair, {t: [0.0, 0.0] for t in TIMINGS})
            for i, timing in enumerate(TIMINGS):
                row[timing][0] += values[2 * i]
                row[timing][1] += values[2 * i + 1]
    return {p: {t: (w, s) for t, (w, s) in row.items()} for p, row in totals.items()}


def live_workers(client: redis.Redis) -> dict[str, int]:
    """Return, per group, how many consumers have an unexpired heartbeat (one SCAN for all)."""
    names = list(client.scan_iter(match=keys.heartbeat_pattern("*"), count=shards.SCAN_COUNT))
    out: dict[str, int] = {}
    prefix = keys.heartbeat("", "")[:-1]  # "llmtap:heartbeat:"
    for name, value in zip(names, client.mget(names) if names else [], strict=True):
        if value is not None and decode_heartbeat(value) is not None:
            group = aggregates.text(name).removeprefix(prefix).partition(":")[0]
            out[group] = out.get(group, 0) + 1
    return out
