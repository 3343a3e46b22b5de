"""Optimization insights over a range: the inputs the insight rules read (usage, latency, call
details, repeated prompts), their recommendations, and the anomalies of the last hour."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from llmtap import aggregates, keys
from llmtap.analyzers import anomaly, insights
from llmtap.read.context import context_windows
from llmtap.read.window import DAY, HOUR, iso
from tests.read.oracle import query
from tests.read.oracle.cost import hourly_totals


def optimization_insights(
    client: redis.Redis,
    since: float,
    until: float,
    windows: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Return ``get_optimization_insights``'s structure for the range ``[since, until)``.

    ``windows`` (model name -> tokens) override the context windows looked up.
    """
    recommendations = insights.recommend(insight_inputs(client, since, until, windows))
    return {
        "timeframe_hours": (until - since) / HOUR,
        "generated_at": iso(until),
        "recommendations": recommendations,
        "anomalies": anomalies(client, until),
        "total_potential_saving_usd": sum(r["estimated_saving_usd"] or 0 for r in recommendations),
    }


def insight_inputs(
    client: redis.Redis, since: float, until: float, windows: Mapping[str, int] | None = None
) -> insights.InsightInputs:
    """Gather the usage, latency, call details, prompt statistics and the known context windows
    (see :mod:`llmtap.read.context`) the rules read."""
    latency = query.latency_rows(client, since, until, "model")
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
        for model, row in query.cost_by(client, "model", since, until).items()
    ]
    lat = [
        insights.ModelLatency(r["backend"], r["model"], r["p95"], r["mean"], r["weighted_count"])
        for r in latency
        if r["mean"] is not None
    ]
    details, prompts = call_details(client, since, until)
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
    """Merge the day call-detail hashes touching the range (whole UTC days)."""
    days = range(keys.bucket_start("d", since), int(until) + 1, DAY)
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.hgetall(keys.call_details(keys.bucket("d", day)))
    merged = aggregates.merge_call_details(pipe.execute())
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
    latency = []
    for start in starts:
        rows = query.latency_percentiles(client, start, start + HOUR, (0.5,), by="all")
        latency.append(rows[0]["mean"] if rows and rows[0]["mean"] is not None else 0.0)
    found = anomaly.scan({"cost_usd_per_hour": cost, "mean_latency_s": latency})
    return [a.as_dict() for a in found]
