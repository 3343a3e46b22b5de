"""The performance dashboard: one window's metadata, cost, performance, efficiency and alerts,
in the sections of the original profiler's dashboard, from one read of the window's buckets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from llmtap.analyzers import burn
from llmtap.read import query, shards
from llmtap.read.admin import effective_settings
from llmtap.read.alerts import alerts_summary
from llmtap.read.bucketcache import BucketCache
from llmtap.read.snapshot import Snapshot
from llmtap.read.window import HOUR, fraction, iso
from llmtap.settings import Settings


@shards.reads_one_layout
def dashboard(
    client: redis.Redis,
    hours_back: float,
    until: float,
    settings: Settings | None = None,
    *,
    cache: BucketCache | None = None,
) -> dict[str, Any]:
    """Return ``get_performance_dashboard``'s sections for the ``hours_back`` before ``until``
    (without cache statistics; closed buckets from ``cache`` when given)."""
    since = until - hours_back * HOUR
    snap = Snapshot.read(client, since, until, cache)
    total = query.total_of(snap)
    overall = next(iter(query.latency_rows_of(snap, "all")), None)
    return {
        "dashboard_metadata": {
            "generated_at": iso(until),
            "timeframe_hours": hours_back,
            "total_metrics_analyzed": overall["count"] if overall else 0,
        },
        "cost_analysis": _cost(snap, total),
        "performance": _performance(total, overall, (until - since) / 60),
        "efficiency": _efficiency(total, overall),
        "alerts": alerts_summary(client, since, until, effective_settings(client, settings)),
    }


def _cost(snap: Snapshot, total: Mapping[str, Any]) -> dict[str, Any]:
    by_backend = snap.cost_by("backend")
    by_model = snap.cost_by("model")
    return {
        "total_cost_usd": total["cost_usd"],
        "total_calls": total["calls"],
        "avg_cost_per_call_usd": total["cost_usd"] / total["calls"] if total["calls"] else 0.0,
        "cost_by_backend": {b: row["cost_usd"] for b, row in by_backend.items()},
        "cost_by_model": {m: row["cost_usd"] for m, row in by_model.items()},
        "burn_rate": burn.burn_rate(total["cost_usd"], (snap.until - snap.since) / HOUR),
    }


def _performance(
    total: Mapping[str, Any], overall: Mapping[str, Any] | None, minutes: float
) -> dict[str, Any]:
    calls, errors = total["calls"], total["errors"]
    row = overall or {}
    return {
        "total_calls": calls,
        "errors": errors,
        "success_rate": fraction(calls - errors, calls),
        "error_rate": fraction(errors, calls),
        "avg_latency": row.get("mean"),
        "p50_latency": row.get("p50"),
        "p95_latency": row.get("p95"),
        "p99_latency": row.get("p99"),
        "calls_per_min": calls / minutes if minutes else 0.0,
    }


def _efficiency(total: Mapping[str, Any], overall: Mapping[str, Any] | None) -> dict[str, Any]:
    calls, tokens_in, tokens_out = total["calls"], total["input_tokens"], total["output_tokens"]
    tokens = tokens_in + tokens_out
    return {
        "tokens_per_call": tokens / calls if calls else 0.0,
        "cost_per_1k_tokens_usd": 1000 * total["cost_usd"] / tokens if tokens else None,
        "output_input_ratio": tokens_out / tokens_in if tokens_in else None,
        "cache_read_share": total["cache_read_tokens"] / tokens_in if tokens_in else None,
        "generation_tokens_per_s": (overall or {}).get("generation_tokens_per_s"),
        "unpriced_calls": total["unpriced_calls"],
    }
