"""Reads the workers' aggregates over a time range and returns plain, JSON-ready structures.

Every function takes the Redis client and the range ``[since, until)`` (Unix seconds; the caller
passes "now", there is no hidden clock). The range is widened to whole minutes and covered with
the fewest buckets: whole UTC days, then whole hours, then minutes at the edges (see
:func:`cover`). Buckets older than their retention are gone, so a range that reaches past the
minute retention (2 days by default) counts only the hours and days at its old edge.
Costs are stored in integer nano-USD and returned both exact (``cost_nanousd``) and in USD.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

import redis

from llmtap import aggregates, keys
from llmtap.aggregates import DIMENSIONS, TIMINGS, USAGE_METRICS
from llmtap.analyzers import sketch
from llmtap.read import shards

LATENCY_GROUPINGS: Final = ("model", "backend", "all")
QUANTILES: Final = (0.5, 0.95, 0.99)  # the percentiles the tool functions report

Bucket = tuple[str, int]
T = TypeVar("T")


def cover(since: float, until: float) -> list[Bucket]:
    """Return the (granularity, bucket start) pairs that exactly cover the widened range.

    ``since`` is rounded down and ``until`` up to whole minutes; at each step the largest
    aligned bucket that fits is taken. Raises ValueError if ``until < since``.
    """
    if until < since:
        raise ValueError("until is before since")
    start = math.floor(since / 60) * 60
    end = math.ceil(until / 60) * 60
    out: list[Bucket] = []
    t = start
    while t < end:
        granularity = next(
            g
            for g in ("d", "h", "m")
            if t % keys.BUCKET_SECONDS[g] == 0 and t + keys.BUCKET_SECONDS[g] <= end
        )
        out.append((granularity, t))
        t += keys.BUCKET_SECONDS[granularity]
    return out


def cost_by(
    client: redis.Redis, dimension: str, since: float, until: float
) -> dict[str, dict[str, Any]]:
    """Return cost and usage per value of ``dimension`` (``total`` gives one ``total`` row).

    Each row: ``cost_nanousd`` (exact), ``cost_usd``, and every usage metric (calls, errors,
    tokens by kind, unpriced calls). Raises ValueError for an unknown dimension.
    """
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}; known: {', '.join(DIMENSIONS)}")
    costs, usage = _sum_cost_and_usage(client, cover(since, until))
    rows: defaultdict[str, dict[str, Any]] = defaultdict(_empty_row)
    for field, value in costs.items():
        kind, name = aggregates.split_dimension(field)
        if kind == dimension:
            rows[name]["cost_nanousd"] += value
    for field, value in usage.items():
        dim, metric = aggregates.split_usage_field(field)
        kind, name = aggregates.split_dimension(dim)
        if kind == dimension:
            row = rows[name]
            row[metric] = row.get(metric, 0) + value
    for row in rows.values():
        row["cost_usd"] = aggregates.usd(row["cost_nanousd"])
    return dict(rows)


def total(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return the ``total`` row of :func:`cost_by` (zeros when nothing was counted)."""
    row = cost_by(client, aggregates.TOTAL, since, until).get(aggregates.TOTAL)
    return row if row is not None else {"cost_usd": 0.0, **_empty_row()}


def throughput(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return exact calls (from rollups) over the range, per minute, in total and per model."""
    buckets = cover(since, until)
    minutes = sum(keys.BUCKET_SECONDS[g] for g, _ in buckets) / 60
    _, usage = _sum_cost_and_usage(client, buckets)
    calls = usage.get(aggregates.usage_field(aggregates.TOTAL, "calls"), 0)
    by_model = _split(_metric(usage, "calls"), "model")
    return {
        "calls": calls,
        "minutes": minutes,
        "calls_per_min": calls / minutes if minutes else 0.0,
        "by_model": {m: {"calls": c, "calls_per_min": c / minutes} for m, c in by_model.items()},
    }


def error_rate(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return calls, errors and their ratio over the range: total, per backend, per model."""
    _, usage = _sum_cost_and_usage(client, cover(since, until))
    calls, errors = _metric(usage, "calls"), _metric(usage, "errors")
    rows = {dim: _rate(calls.get(dim, 0), errors.get(dim, 0)) for dim in calls}
    return {
        **rows.get(aggregates.TOTAL, _rate(0, 0)),
        "by_backend": _split(rows, "backend"),
        "by_model": _split(rows, "model"),
    }


def latency_percentiles(
    client: redis.Redis,
    since: float,
    until: float,
    qs: Sequence[float] = (0.5, 0.9, 0.95, 0.99),
    timing: str = "latency",
    by: str = "model",
) -> list[dict[str, Any]]:
    """Return, per (backend, model), the merged sketch's quantiles of ``timing`` (seconds).

    Each row: backend, model, ``count`` (events), ``weighted_count`` (estimated calls), mean,
    min, max, ``p50``... (keys ``p`` + the quantile times 100) and mean output tokens/s.
    ``by="backend"`` merges the models of each backend (model ``*``), ``by="all"`` everything
    (backend and model ``*``). Raises ValueError for an unknown timing or grouping.
    """
    if timing not in TIMINGS:
        raise ValueError(f"unknown timing {timing!r}; known: {', '.join(TIMINGS)}")
    if by not in LATENCY_GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}; known: {', '.join(LATENCY_GROUPINGS)}")
    merged: dict[tuple[str, str], _Timing] = {}
    for pair, fields in _latency_hashes(client, cover(since, until)):
        merged.setdefault(_group_key(pair, by), _Timing()).add(fields, timing)
    return [
        {"backend": backend, "model": model, **merged[backend, model].row(qs)}
        for backend, model in sorted(merged)
        if merged[backend, model].count
    ]


def latency_rows(
    client: redis.Redis, since: float, until: float, by: str, timing: str = "latency"
) -> list[dict[str, Any]]:
    """Return :func:`latency_percentiles` at QUANTILES, with None for the infinite min/max of
    an empty timing (JSON has no infinity)."""
    rows = latency_percentiles(client, since, until, QUANTILES, timing, by)
    return [_finite(row) for row in rows]


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and abs(v) == float("inf") else v) for k, v in row.items()
    }


class _Timing:
    """One timing of one (backend, model), merged over buckets."""

    def __init__(self) -> None:
        self.count = 0
        self.weight = 0.0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.bins: list[dict[int, float]] = []
        self.tps = [0.0, 0.0]  # weighted sum, weighted count

    def add(self, fields: Mapping[str, str], timing: str) -> None:
        decoded = aggregates.decode_timing(fields, timing)
        self.bins.append(decoded.bins)
        self.count += decoded.n
        self.weight += decoded.w
        self.total += decoded.total
        self.low = min(self.low, decoded.low)
        self.high = max(self.high, decoded.high)
        tps_sum, tps_w = aggregates.decode_tps(fields)
        self.tps[0] += tps_sum
        self.tps[1] += tps_w

    def row(self, qs: Sequence[float]) -> dict[str, Any]:
        merged = sketch.merge(*self.bins)
        values = sketch.quantiles(merged, qs)
        out: dict[str, Any] = {
            "count": self.count,
            "weighted_count": self.weight,
            "mean": self.total / self.weight if self.weight else None,
            "min": self.low,
            "max": self.high,
            "generation_tokens_per_s": self.tps[0] / self.tps[1] if self.tps[1] else None,
        }
        out.update({_label(q): value for q, value in zip(qs, values, strict=True)})
        return out


def _group_key(pair: tuple[str, str], by: str) -> tuple[str, str]:
    if by == "model":
        return pair
    return (pair[0], "*") if by == "backend" else ("*", "*")


def _label(q: float) -> str:
    return f"p{q * 100:g}"


def _empty_row() -> dict[str, Any]:
    return {"cost_nanousd": 0, **dict.fromkeys(USAGE_METRICS, 0)}


def _metric(usage: Mapping[str, int], metric: str) -> dict[str, int]:
    """Return dimension -> value of one metric of summed usage fields."""
    out: dict[str, int] = {}
    for field, value in usage.items():
        dim, name = aggregates.split_usage_field(field)
        if name == metric:
            out[dim] = value
    return out


def _rate(calls: int, errors: int) -> dict[str, Any]:
    return {"calls": calls, "errors": errors, "error_rate": errors / calls if calls else 0.0}


def _split(rows: Mapping[str, T], kind: str) -> dict[str, T]:
    """Return the rows of one dimension kind, by value."""
    out: dict[str, T] = {}
    for dim, row in rows.items():
        found, name = aggregates.split_dimension(dim)
        if found == kind:
            out[name] = row
    return out


def _names(buckets: Iterable[Bucket]) -> list[tuple[str, str]]:
    return [(g, keys.bucket(g, start)) for g, start in buckets]


def _sum_cost_and_usage(
    client: redis.Redis, buckets: Sequence[Bucket]
) -> tuple[dict[str, int], dict[str, int]]:
    names = [(keys.cost(g, n), keys.usage(g, n)) for g, n in _names(buckets)]
    replies = shards.hgetall_many(client, [key for pair in names for key in pair])
    costs: defaultdict[str, int] = defaultdict(int)
    usage: defaultdict[str, int] = defaultdict(int)
    for i, reply in enumerate(replies):
        target = costs if i % 2 == 0 else usage
        for field, value in aggregates.decode_counts(reply).items():
            target[field] += value
    return dict(costs), dict(usage)


def _latency_hashes(
    client: redis.Redis, buckets: Sequence[Bucket]
) -> list[tuple[tuple[str, str], dict[str, str]]]:
    names = _names(buckets)
    indexes = shards.smembers_many(client, [keys.latency_index(g, n) for g, n in names])
    wanted: list[tuple[str, str, str, str]] = []
    for (granularity, name), members in zip(names, indexes, strict=True):
        for member in members:
            backend, model = aggregates.decode_latency_member(member)
            wanted.append((granularity, name, backend, model))
    replies = shards.hgetall_many(client, [keys.latency(g, n, b, m) for g, n, b, m in wanted])
    return [
        ((backend, model), {aggregates.text(k): aggregates.text(v) for k, v in reply.items()})
        for (_, _, backend, model), reply in zip(wanted, replies, strict=True)
    ]
