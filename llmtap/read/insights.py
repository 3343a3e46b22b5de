"""Optimization insights over a range: the inputs the insight rules read (usage, latency, call
details, repeated prompts), their recommendations, and the anomalies of the last hour."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis

from llmtap import aggregates, keys
from llmtap.analyzers import anomaly, insights
from llmtap.read import query, shards
from llmtap.read.bucketcache import BucketCache
from llmtap.read.context import context_windows
from llmtap.read.cost import hourly_totals
from llmtap.read.fetch import fetch
from llmtap.read.snapshot import Snapshot
from llmtap.read.window import DAY, HOUR, iso


@shards.reads_one_layout
def optimization_insights(
    client: redis.Redis,
    since: float,
    until: float,
    windows: Mapping[str, int] | None = None,
    *,
    cache: BucketCache | None = None,
) -> dict[str, Any]:
    """Return ``get_optimization_insights``'s structure for the range ``[since, until)``.

    ``windows`` (model name -> tokens) override the context windows looked up.
    """
    return insights_of(Snapshot.read(client, since, until, cache), windows)


def insights_of(snap: Snapshot, windows: Mapping[str, int] | None = None) -> dict[str, Any]:
    """:func:`optimization_insights` from a snapshot (plus the call details and the hours
    behind the anomalies, which it reads)."""
    recommendations = insights.recommend(inputs_of(snap, windows))
    return {
        "timeframe_hours": (snap.until - snap.since) / HOUR,
        "generated_at": iso(snap.until),
        "recommendations": recommendations,
        "anomalies": anomalies(snap.client, snap.until),
        "total_potential_saving_usd": sum(r["estimated_saving_usd"] or 0 for r in recommendations),
    }


def insight_inputs(
    client: redis.Redis, since: float, until: float, windows: Mapping[str, int] | None = None
) -> insights.InsightInputs:
    """Gather the usage, latency, call details, prompt statistics and the known context windows
    (see :mod:`llmtap.read.context`) the rules read."""
    return inputs_of(Snapshot.read(client, since, until), windows)


def inputs_of(snap: Snapshot, windows: Mapping[str, int] | None = None) -> insights.InsightInputs:
    """:func:`insight_inputs` from a snapshot."""
    latency = query.latency_rows_of(snap, "model")
    backend_of = {row["model"]: row["backend"] for row in latency}
    usage = [
        insights.ModelUsage(
            backend=backend_of.get(model, ""),
            model=model,
            calls=row["calls"],
            errors=row["errors"],
            cost_usd=row["cost_usd"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
        )
        for model, row in snap.cost_by("model").items()
    ]
    lat = [
        insights.ModelLatency(r["backend"], r["model"], r["p95"], r["mean"], r["weighted_count"])
        for r in latency
        if r["mean"] is not None
    ]
    details, prompts = call_details(snap.client, snap.since, snap.until)
    models = [(backend_of.get(d.model, ""), d.model) for d in details]
    return insights.InsightInputs(
        usage=usage,
        latency=lat,
        details=details,
        prompts=prompts,
        context_windows=context_windows(models, windows),
    )


def call_details(
    client: redis.Redis, since: float, until: float
) -> tuple[list[insights.ModelDetails], list[insights.PromptStats]]:
    """Merge the day call-detail hashes touching the range (whole UTC days, every shard)."""
    days = range(keys.bucket_start("d", since), int(until) + 1, DAY)
    names = [keys.call_details(keys.bucket("d", day)) for day in days]
    merged = aggregates.merge_call_details(fetch(client, names).hashes)
    details = [
        insights.ModelDetails(
            model=model,
            weight=row.get("w", 0.0),
            retries_w=row.get("retries_w", 0.0),
            failed_w=row.get("failed_w", 0.0),
            failed_cost_w=row.get("failed_cost_w", 0.0),
            max_input_tokens=int(row.get("max_input_tokens", 0)),
        )
        for model, row in sorted(merged.models.items())
    ]
    prompts = [
        insights.PromptStats(
            prompt_hash=prompt,
            events=int(row.get("n", 0)),
            weight=row.get("w", 0.0),
            cost_w=row.get("cost_w", 0.0),
        )
        for prompt, row in sorted(merged.prompts.items())
    ]
    return details, prompts


def anomalies(client: redis.Redis, now: float, hours: int = 24) -> list[dict[str, Any]]:
    """Return anomalies of the last complete hour's cost and mean latency against the
    ``hours`` hours before it."""
    end = keys.bucket_start("h", now)
    starts = [end - (hours + 1 - i) * HOUR for i in range(hours + 1)]
    cost = hourly_totals(client, starts)
    found = anomaly.scan(
        {"cost_usd_per_hour": cost, "mean_latency_s": hourly_latency_means(client, starts)}
    )
    return [a.as_dict() for a in found]


def hourly_latency_means(client: redis.Redis, starts: Sequence[int]) -> list[float]:
    """Return the mean latency of all calls of each UTC hour starting at ``starts`` (0 where
    none), from the hour sketches' weighted sums: two round trips for every hour."""
    names = [keys.bucket("h", start) for start in starts]
    indexes = fetch(client, sets=[keys.latency_index("h", name) for name in names]).sets
    fields = [aggregates.timing_field("latency", stat) for stat in ("n", "w", "sum")]
    hashes = [
        keys.latency("h", name, *aggregates.decode_latency_member(member))
        for name, members in zip(names, indexes, strict=True)
        for member in members
    ]
    replies = iter(shards.hmget_many(client, hashes, fields))
    out = []
    for members in indexes:
        count, weight, total = 0, 0.0, 0.0
        for n, w, s in (next(replies) for _ in members):
            count += int(n or 0)
            weight += float(w or 0.0)
            total += float(s or 0.0)
        out.append(total / weight if count and weight else 0.0)
    return out
