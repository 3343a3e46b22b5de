"""The raw reads behind ``/metrics``: one scrape's aggregates in two pipelined round trips.

The counters cover the current UTC month (the day hashes from the 1st to today, today's being
live), so they only grow until 00:00 UTC on the 1st, where they reset (``rate()`` and
``increase()`` handle a reset). The quantiles cover a short recent window of minute buckets.
The first round trip reads the cost and usage day hashes, the latency indexes, the stream
lengths, the groups and their counters; the second the latency hashes the indexes named.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis

from llmtap import aggregates, keys
from llmtap.aggregates import TIMINGS
from llmtap.notify import decode_heartbeat
from llmtap.read import query
from llmtap.read.window import DAY

Pair = tuple[str, str]
# The latency-hash fields of one timing the month's summaries need: weighted count and sum.
_TOTAL_STATS: Final = ("w", "sum")


@dataclass
class Snapshot:
    """Everything one scrape reports, read at ``now``.

    ``costs``/``usage``: the month's summed cost and usage fields. ``latency_totals``: per
    (backend, model) and timing, the month's (weighted count, weighted seconds). ``window``:
    per (backend, model) and timing, the merged sketch bins of the quantile window. ``groups``:
    per event group, its XINFO fields (None when the group does not exist) and its counters.
    """

    now: float
    month_start: int
    costs: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    latency_totals: dict[Pair, dict[str, tuple[float, float]]] = field(default_factory=dict)
    window: dict[Pair, dict[str, list[dict[int, float]]]] = field(default_factory=dict)
    stream_length: int = 0
    dlq_length: int = 0
    groups: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)


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
    """Return the aggregates one scrape reports at ``now``; redis errors propagate."""
    start = month_start(now)
    days = [keys.bucket("d", day) for day in range(start, keys.bucket_start("d", now) + 1, DAY)]
    recent = [(g, keys.bucket(g, s)) for g, s in query.cover(now - window_s, now)]
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.hgetall(keys.cost("d", day))
        pipe.hgetall(keys.usage("d", day))
        pipe.smembers(keys.latency_index("d", day))
    for granularity, name in recent:
        pipe.smembers(keys.latency_index(granularity, name))
    pipe.xlen(keys.EVENTS)
    pipe.xlen(keys.DLQ)
    pipe.xinfo_groups(keys.EVENTS)
    for group in groups:
        pipe.hgetall(keys.stats(group))
    replies = iter(pipe.execute(raise_on_error=False))
    out = Snapshot(now=now, month_start=start)
    day_pairs = _sum_days(out, days, replies)
    window_pairs = [(g, n, _pairs(_ok(next(replies), set()))) for g, n in recent]
    out.stream_length = int(_ok(next(replies), 0))
    out.dlq_length = int(_ok(next(replies), 0))
    out.groups = _groups(_ok(next(replies), []), groups)
    out.counters = {g: aggregates.decode_counts(_ok(next(replies), {})) for g in groups}
    _read_latency(client, out, day_pairs, window_pairs)
    return out


def _ok(reply: Any, default: Any) -> Any:
    """The reply, or ``default`` when the command failed (a stream that does not exist yet)."""
    if isinstance(reply, redis.ResponseError):
        return default
    if isinstance(reply, Exception):
        raise reply
    return reply


def _sum_days(out: Snapshot, days: Sequence[str], replies: Any) -> list[tuple[str, list[Pair]]]:
    costs: defaultdict[str, int] = defaultdict(int)
    usage: defaultdict[str, int] = defaultdict(int)
    day_pairs = []
    for day in days:
        for target in (costs, usage):
            for name, value in aggregates.decode_counts(_ok(next(replies), {})).items():
                target[name] += value
        day_pairs.append((day, _pairs(_ok(next(replies), set()))))
    out.costs, out.usage = dict(costs), dict(usage)
    return day_pairs


def _pairs(members: Any) -> list[Pair]:
    return sorted(aggregates.decode_latency_member(m) for m in members)


def _groups(infos: Sequence[Mapping[Any, Any]], groups: Sequence[str]) -> dict[str, Any]:
    found = {aggregates.text(info["name"]): dict(info) for info in infos}
    return {group: found.get(group) for group in groups}


def _read_latency(
    client: redis.Redis,
    out: Snapshot,
    day_pairs: Sequence[tuple[str, Sequence[Pair]]],
    window_pairs: Sequence[tuple[str, str, Sequence[Pair]]],
) -> None:
    names = [aggregates.timing_field(t, s) for t in TIMINGS for s in _TOTAL_STATS]
    pipe = client.pipeline(transaction=False)
    for day, pairs in day_pairs:
        for backend, model in pairs:
            pipe.hmget(keys.latency("d", day, backend, model), names)
    for granularity, name, pairs in window_pairs:
        for backend, model in pairs:
            pipe.hgetall(keys.latency(granularity, name, backend, model))
    replies = iter(pipe.execute())
    out.latency_totals = _month_totals(day_pairs, replies)
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
    names = list(client.scan_iter(match=keys.heartbeat_pattern("*"), count=1000))
    out: dict[str, int] = {}
    prefix = keys.heartbeat("", "")[:-1]  # "llmtap:heartbeat:"
    for name, value in zip(names, client.mget(names) if names else [], strict=True):
        if value is not None and decode_heartbeat(value) is not None:
            group = aggregates.text(name).removeprefix(prefix).partition(":")[0]
            out[group] = out.get(group, 0) + 1
    return out
