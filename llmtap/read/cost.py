"""Cost over a range: exact spend by backend, model, tenant and session, burn rate and month-end
projection, the most expensive calls and sessions, and the cost series behind the charts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

import redis

from llmtap import aggregates, keys
from llmtap.analyzers import burn
from llmtap.read import query, shards
from llmtap.read.bucketcache import BucketCache
from llmtap.read.fetch import fetch
from llmtap.read.snapshot import Snapshot
from llmtap.read.window import DAY, HOUR

SESSION_ROWS: Final = 100  # cost_by_session lists the costliest sessions only
_CHART_DAILY_AFTER: Final = 4 * DAY  # beyond this span the cost series is per day


@shards.reads_one_layout
def cost_analysis(
    client: redis.Redis,
    since: float,
    until: float,
    monthly_budget_usd: float | None = None,
    top_n: int = 10,
    *,
    cache: BucketCache | None = None,
) -> dict[str, Any]:
    """Return ``get_cost_analysis_data``'s structure for the range ``[since, until)`` (closed
    buckets from ``cache`` when given)."""
    return analysis_of(Snapshot.read(client, since, until, cache), monthly_budget_usd, top_n)


def analysis_of(
    snap: Snapshot, monthly_budget_usd: float | None = None, top_n: int = 10
) -> dict[str, Any]:
    """:func:`cost_analysis` from a snapshot (plus the day totals and top calls it reads)."""
    client, since, until = snap.client, snap.since, snap.until
    total = query.total_of(snap)
    by_model = snap.cost_by("model")
    sessions = _cost_rows(snap.cost_by("session"))
    hours = (until - since) / HOUR
    return {
        "timeframe_hours": hours,
        "total_cost_usd": total["cost_usd"],
        "total_cost_nanousd": total["cost_nanousd"],
        "total_calls": total["calls"],
        "unpriced_calls": total["unpriced_calls"],
        "avg_cost_per_call_usd": total["cost_usd"] / total["calls"] if total["calls"] else 0.0,
        "cost_by_backend": _cost_rows(snap.cost_by("backend")),
        "cost_by_model": _cost_rows(by_model),
        "cost_by_tenant": _cost_rows(snap.cost_by("tenant")),
        "cost_by_session": dict(list(sessions.items())[:SESSION_ROWS]),
        "sessions_total": len(sessions),
        "cost_per_1k_tokens_by_model": {m: _per_1k(row) for m, row in by_model.items()},
        "burn_rate": {
            **burn.burn_rate(total["cost_usd"], hours),
            **month_projection(client, until, monthly_budget_usd),
        },
        "most_expensive_operations": top_calls(client, since, until, top_n),
    }


def _cost_rows(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    ordered = sorted(rows.items(), key=lambda item: -item[1]["cost_nanousd"])
    return {
        name: {
            "cost_usd": row["cost_usd"],
            "cost_nanousd": row["cost_nanousd"],
            "calls": row["calls"],
            "errors": row["errors"],
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
        }
        for name, row in ordered
    }


def _per_1k(row: Mapping[str, Any]) -> float | None:
    tokens = row["input_tokens"] + row["output_tokens"]
    return 1000 * row["cost_usd"] / tokens if tokens else None


def daily_costs(client: redis.Redis, first_day: int, last_day: int) -> dict[int, float]:
    """Return USD per UTC day start for the days from ``first_day`` to ``last_day`` (included)."""
    days = list(range(first_day, last_day + 1, DAY))
    replies = _totals(client, [keys.cost("d", keys.bucket("d", day)) for day in days])
    return {day: aggregates.usd(int(v)) for day, v in zip(days, replies, strict=True) if v}


def hourly_totals(client: redis.Redis, starts: list[int]) -> list[float]:
    """Return the total USD of each UTC hour starting at ``starts`` (0 where none)."""
    replies = _totals(client, [keys.cost("h", keys.bucket("h", start)) for start in starts])
    return [aggregates.usd(int(v or 0)) for v in replies]


def _totals(client: redis.Redis, names: list[str]) -> list[aggregates.Raw | None]:
    """The ``total`` field of each cost hash, summed over every shard (None where absent)."""
    return [total for (total,) in shards.hmget_many(client, names, [aggregates.TOTAL])]


def month_projection(
    client: redis.Redis, now: float, budget_usd: float | None = None
) -> dict[str, Any]:
    """Return the month-end projection (see :func:`burn.project_month`) from the day totals."""
    today = keys.bucket_start("d", now)
    month_start = int(dt.datetime.fromtimestamp(now, dt.UTC).replace(day=1).timestamp())
    first = min(keys.bucket_start("d", month_start), today - burn.TREND_DAYS * DAY)
    return burn.project_month(daily_costs(client, first, today), now, budget_usd).as_dict()


def top_calls(client: redis.Redis, since: float, until: float, n: int) -> list[dict[str, Any]]:
    """Return the ``n`` most expensive call events that started in ``[since, until)``.

    Each shard keeps its own day's costliest calls, so on several shards a range shorter than
    a day can list calls that one server's (shorter) top set would have trimmed.
    """
    days = range(keys.bucket_start("d", since), int(until) + 1, DAY)
    names = [keys.top_calls(keys.bucket("d", day)) for day in days]
    found = [aggregates.decode_member(m) for ms in shards.zrange_many(client, names) for m in ms]
    inside = [c for c in found if since <= c["start_time"] < until]
    inside.sort(key=lambda c: (-c["cost_usd"], c["call_id"]))
    return inside[:n]


def top_sessions(
    client: redis.Redis, since: float, until: float, n: int = 10
) -> list[dict[str, Any]]:
    """Return the ``n`` most expensive sessions of the range (exact, from rollups)."""
    return top_sessions_of(Snapshot.read(client, since, until), n)


def top_sessions_of(snap: Snapshot, n: int = 10) -> list[dict[str, Any]]:
    """:func:`top_sessions` from a snapshot."""
    rows = snap.cost_by("session")
    ordered = sorted(rows.items(), key=lambda item: (-item[1]["cost_nanousd"], item[0]))[:n]
    return [
        {"session_id": s, "cost_usd": r["cost_usd"], "calls": r["calls"], "errors": r["errors"]}
        for s, r in ordered
    ]


def cost_series(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return USD per model per hour (or per day beyond 4 days) over the range, for charts."""
    granularity = "h" if until - since <= _CHART_DAILY_AFTER else "d"
    step = keys.BUCKET_SECONDS[granularity]
    starts = list(range(keys.bucket_start(granularity, since), int(until), step))
    names = [keys.cost(granularity, keys.bucket(granularity, start)) for start in starts]
    series: dict[str, list[float]] = {}
    for i, reply in enumerate(fetch(client, names).hashes):
        for field, nano in aggregates.decode_counts(reply).items():
            kind, model = aggregates.split_dimension(field)
            if kind == "model":
                points = series.setdefault(model, [0.0] * len(starts))
                points[i] = aggregates.usd(nano)
    return {"granularity": granularity, "starts": starts, "by_model": series}
