"""The original profiler's nine tool functions, reading the workers' aggregates from Redis.

Names, arguments and JSON shapes follow the original (``get_profiling_status`` ...
``export_performance_report``); each takes the Redis client first and, where time matters,
``now`` (Unix seconds; default: the clock). Numbers are exact where the aggregates are (cost,
calls, errors and tokens come from the producers' rollups) and estimated from the weighted
sketches where they are not (latency percentiles). :class:`ProfilingTools` binds a client
and caches the expensive results for ``cache_ttl_s`` (60 s, as in the original).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, cast

import redis

from llmtap import aggregates, keys
from llmtap.analyzers import anomaly, burn, insights, report
from llmtap.consumers.registry import WORKERS
from llmtap.read import health, query
from llmtap.settings import Settings, SettingsError

HOUR: Final = 3600
DAY: Final = 86_400
NANO: Final = 1_000_000_000
QUANTILES: Final = (0.5, 0.95, 0.99)
SESSION_ROWS: Final = 100  # cost_by_session lists the costliest sessions only
PRODUCER_STATS: Final = ("total_calls", "profiled_calls", "dropped_events", "unpriced_calls")
# Keys a reset keeps: the runtime settings are configuration, heartbeats belong to live workers.
RESET_KEEPS: Final = (keys.RUNTIME_SETTINGS,)
RESET_KEEP_PREFIXES: Final = (keys.HEARTBEAT_PREFIX,)


# --- helpers -------------------------------------------------------------------------------


def iso(ts: float) -> str:
    """Return a Unix time as an ISO 8601 UTC string with a ``Z``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _usd(nano: int) -> float:
    return nano / NANO


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


def effective_settings(client: redis.Redis, base: Settings | None = None) -> Settings:
    """Return ``base`` (default: the environment) with the runtime-settings hash applied.

    A field that does not validate is skipped, as the producers skip it.
    """
    settings = base or Settings.from_env()
    for name, value in client.hgetall(keys.RUNTIME_SETTINGS).items():
        try:
            settings = settings.with_overrides({_text(name): _text(value)})
        except SettingsError:
            continue
    return settings


# --- get_profiling_status ------------------------------------------------------------------


def get_profiling_status(client: redis.Redis, settings: Settings | None = None) -> dict[str, Any]:
    """Return the effective configuration, the producers' exact statistics and pipeline health.

    ``statistics`` sums every live producer's latest rollup statistics (cumulative since each
    producer started); ``profiling_rate`` is the percentage of calls sent as call events.
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
            "profiling_rate": round(_pct(stats["profiled_calls"], stats["total_calls"]), 2),
        },
        "pipeline": pipeline_health(client),
    }


def producer_statistics(client: redis.Redis) -> dict[str, int]:
    """Return the summed statistics of every producer hash, and how many producers there are."""
    names = list(client.scan_iter(match=keys.producer("*"), count=1000))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hmget(name, PRODUCER_STATS)
    totals = dict.fromkeys(PRODUCER_STATS, 0)
    for values in pipe.execute() if names else []:
        for stat, value in zip(PRODUCER_STATS, values, strict=True):
            totals[stat] += int(value or 0)
    return {**totals, "producers": len(names)}


def pipeline_health(client: redis.Redis) -> dict[str, Any]:
    """Return the stream and DLQ lengths and, per worker group, lag, pending and live workers."""
    workers: dict[str, dict[str, Any]] = {}
    for name, spec in WORKERS.items():
        if spec.runner is None:  # a consumer group on the events stream
            g = health.group_stats(client, spec.group)
            fields = ("exists", "processed", "lag", "pending", "live_consumers")
            workers[name] = {k: g[k] for k in fields}
        else:
            workers[name] = {"live_consumers": len(health.heartbeats(client, spec.group))}
    return {
        **health.stream_stats(client),
        "workers": workers,
        "workers_seen": sum(int(w["live_consumers"]) for w in workers.values()),
    }


# --- get_cost_analysis_data ----------------------------------------------------------------


def get_cost_analysis_data(
    client: redis.Redis,
    hours_back: float = 24,
    *,
    monthly_budget_usd: float | None = None,
    top_n: int = 10,
    now: float | None = None,
) -> dict[str, Any]:
    """Return cost by backend, model, tenant and session, cost per 1k tokens by model, the
    burn rate and month-end projection, and the most expensive operations of the window."""
    until = _now(now)
    return cost_analysis(client, until - hours_back * HOUR, until, monthly_budget_usd, top_n)


def cost_analysis(
    client: redis.Redis,
    since: float,
    until: float,
    monthly_budget_usd: float | None = None,
    top_n: int = 10,
) -> dict[str, Any]:
    """Return :func:`get_cost_analysis_data`'s structure for the range ``[since, until)``."""
    total = query.cost_by(client, "total", since, until).get("total", _zero_row())
    by_model = query.cost_by(client, "model", since, until)
    sessions = _cost_rows(query.cost_by(client, "session", since, until))
    hours = (until - since) / HOUR
    return {
        "timeframe_hours": hours,
        "total_cost_usd": total["cost_usd"],
        "total_cost_nanousd": total["cost_nanousd"],
        "total_calls": total["calls"],
        "unpriced_calls": total["unpriced_calls"],
        "avg_cost_per_call_usd": total["cost_usd"] / total["calls"] if total["calls"] else 0.0,
        "cost_by_backend": _cost_rows(query.cost_by(client, "backend", since, until)),
        "cost_by_model": _cost_rows(by_model),
        "cost_by_tenant": _cost_rows(query.cost_by(client, "tenant", since, until)),
        "cost_by_session": dict(list(sessions.items())[:SESSION_ROWS]),
        "sessions_total": len(sessions),
        "cost_per_1k_tokens_by_model": {m: _per_1k(row) for m, row in by_model.items()},
        "burn_rate": {
            **burn.burn_rate(total["cost_usd"], hours),
            **month_projection(client, until, monthly_budget_usd),
        },
        "most_expensive_operations": top_calls(client, since, until, top_n),
    }


def _zero_row() -> dict[str, Any]:
    return {"cost_usd": 0.0, "cost_nanousd": 0, **dict.fromkeys(aggregates.USAGE_METRICS, 0)}


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
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.hget(keys.cost("d", keys.bucket("d", day)), "total")
    return {day: _usd(int(value)) for day, value in zip(days, pipe.execute(), strict=True) if value}


def month_projection(
    client: redis.Redis, now: float, budget_usd: float | None = None
) -> dict[str, Any]:
    """Return the month-end projection (see :func:`burn.project_month`) from the day totals."""
    today = keys.bucket_start("d", now)
    month_start = int(dt.datetime.fromtimestamp(now, dt.UTC).replace(day=1).timestamp())
    first = min(keys.bucket_start("d", month_start), today - burn.TREND_DAYS * DAY)
    return burn.project_month(daily_costs(client, first, today), now, budget_usd).as_dict()


def top_calls(client: redis.Redis, since: float, until: float, n: int) -> list[dict[str, Any]]:
    """Return the ``n`` most expensive call events that started in ``[since, until)``."""
    days = range(keys.bucket_start("d", since), int(until) + 1, DAY)
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.zrevrange(keys.top_calls(keys.bucket("d", day)), 0, -1)
    found = [json.loads(m) for members in pipe.execute() for m in members]
    inside = [c for c in found if since <= c["start_time"] < until]
    inside.sort(key=lambda c: (-c["cost_usd"], c["call_id"]))
    return inside[:n]


# --- get_performance_analysis --------------------------------------------------------------


def get_performance_analysis(
    client: redis.Redis, hours_back: float = 24, *, now: float | None = None
) -> dict[str, Any]:
    """Return p50/p95/p99 per backend and model, a backend comparison, throughput, error
    rates, the network/processing split and time to first token over the window."""
    until = _now(now)
    return performance_analysis(client, until - hours_back * HOUR, until)


def performance_analysis(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return :func:`get_performance_analysis`'s structure for the range ``[since, until)``."""
    return {
        "timeframe_hours": (until - since) / HOUR,
        "latency": _latency_rows(client, since, until, "model"),
        "overall": next(iter(_latency_rows(client, since, until, "all")), None),
        "backend_comparison": backend_comparison(client, since, until),
        "throughput": throughput(client, since, until),
        "error_rates": query.error_rate(client, since, until),
        "network_vs_processing": network_split(client, since, until),
        "time_to_first_token": _latency_rows(client, since, until, "model", "ttft"),
    }


def _latency_rows(
    client: redis.Redis, since: float, until: float, by: str, timing: str = "latency"
) -> list[dict[str, Any]]:
    rows = query.latency_percentiles(client, since, until, QUANTILES, timing, by)
    return [_clean(row) for row in rows]


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """Replace the infinite min/max of an empty timing with None (JSON has no infinity)."""
    return {
        k: (None if isinstance(v, float) and abs(v) == float("inf") else v) for k, v in row.items()
    }


def backend_comparison(client: redis.Redis, since: float, until: float) -> list[dict[str, Any]]:
    """Return each backend's merged percentiles, fastest p95 first, with its ratio to it."""
    rows = sorted(_latency_rows(client, since, until, "backend"), key=lambda r: r["p95"])
    fastest = rows[0]["p95"] if rows else None
    for row in rows:
        del row["model"]
        row["p95_vs_fastest"] = row["p95"] / fastest if fastest else None
    return rows


def throughput(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return exact calls per minute and tokens per second, and the mean generation speed."""
    flow = query.throughput(client, since, until)
    total = query.cost_by(client, "total", since, until).get("total", _zero_row())
    seconds = flow["minutes"] * 60
    overall = _latency_rows(client, since, until, "all")
    return {
        "calls": flow["calls"],
        "calls_per_min": flow["calls_per_min"],
        "tokens_per_s": (total["input_tokens"] + total["output_tokens"]) / seconds
        if seconds
        else 0.0,
        "output_tokens_per_s": total["output_tokens"] / seconds if seconds else 0.0,
        "generation_tokens_per_s": overall[0]["output_tokens_per_s"] if overall else None,
        "by_model": flow["by_model"],
    }


def network_split(client: redis.Redis, since: float, until: float) -> list[dict[str, Any]]:
    """Return per (backend, model) the mean network and processing time and the network share."""
    network = {
        (r["backend"], r["model"]): r
        for r in _latency_rows(client, since, until, "model", "network")
    }
    processing = {
        (r["backend"], r["model"]): r
        for r in _latency_rows(client, since, until, "model", "processing")
    }
    out = []
    for backend, model in sorted(network.keys() | processing.keys()):
        net = (network.get((backend, model)) or {}).get("mean")
        proc = (processing.get((backend, model)) or {}).get("mean")
        both = net is not None and proc is not None and net + proc > 0
        out.append(
            {
                "backend": backend,
                "model": model,
                "network_mean_s": net,
                "processing_mean_s": proc,
                "network_share": net / (net + proc) if both else None,  # type: ignore[operator]
            }
        )
    return out


# --- get_performance_dashboard -------------------------------------------------------------


def get_performance_dashboard(
    client: redis.Redis,
    hours_back: float = 24,
    include_cache_stats: bool = True,
    *,
    now: float | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Return the dashboard: metadata, cost, performance, efficiency and alerts of the window.

    ``total_metrics_analyzed`` counts the call events behind the latency numbers; the cost,
    call and token numbers are exact (rollups). Cache statistics are added by
    :class:`ProfilingTools` (a bare call has no cache: ``{"enabled": false}``).
    """
    until = _now(now)
    since = until - hours_back * HOUR
    total = query.cost_by(client, "total", since, until).get("total", _zero_row())
    overall = next(iter(_latency_rows(client, since, until, "all")), None)
    out: dict[str, Any] = {
        "dashboard_metadata": {
            "generated_at": iso(until),
            "timeframe_hours": hours_back,
            "total_metrics_analyzed": overall["count"] if overall else 0,
        },
        "cost_analysis": _dashboard_cost(client, since, until, total),
        "performance": _dashboard_performance(total, overall, (until - since) / 60),
        "efficiency": _efficiency(total, overall),
        "alerts": alerts_summary(client, since, until, effective_settings(client, settings)),
    }
    if include_cache_stats:
        out["cache_stats"] = {"enabled": False}
    return out


def _dashboard_cost(
    client: redis.Redis, since: float, until: float, total: Mapping[str, Any]
) -> dict[str, Any]:
    by_backend = query.cost_by(client, "backend", since, until)
    by_model = query.cost_by(client, "model", since, until)
    return {
        "total_cost_usd": total["cost_usd"],
        "total_calls": total["calls"],
        "avg_cost_per_call_usd": total["cost_usd"] / total["calls"] if total["calls"] else 0.0,
        "cost_by_backend": {b: row["cost_usd"] for b, row in by_backend.items()},
        "cost_by_model": {m: row["cost_usd"] for m, row in by_model.items()},
        "burn_rate": burn.burn_rate(total["cost_usd"], (until - since) / HOUR),
    }


def _dashboard_performance(
    total: Mapping[str, Any], overall: Mapping[str, Any] | None, minutes: float
) -> dict[str, Any]:
    calls, errors = total["calls"], total["errors"]
    row = overall or {}
    return {
        "total_calls": calls,
        "errors": errors,
        "success_rate": _pct(calls - errors, calls),
        "error_rate": _pct(errors, calls),
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
        "output_tokens_per_s": (overall or {}).get("output_tokens_per_s"),
        "unpriced_calls": total["unpriced_calls"],
    }


def alerts_summary(
    client: redis.Redis, since: float, until: float, settings: Settings
) -> dict[str, Any]:
    """Return the alerts firing now, fired and resolved in the range, and the thresholds.

    Reads the alert worker's state hashes; ``history_available`` is false when there are none.
    """
    states = alert_states(client)
    fired = [s for s in states if since <= _float(s.get("starts_at")) < until]
    resolved = [
        s
        for s in states
        if s.get("status") == "resolved" and since <= _float(s.get("ends_at")) < until
    ]
    return {
        "history_available": bool(states),
        "firing": [s for s in states if s.get("status") == "firing"],
        "fired": fired,
        "resolved": resolved,
        "thresholds": {
            "daily_cost_usd": settings.cost_alert_usd,
            "latency_s": settings.latency_alert_s,
            "memory_mb": settings.memory_alert_mb,
        },
    }


def alert_states(client: redis.Redis) -> list[dict[str, str]]:
    """Return every alert state hash (fingerprint, rule, status, starts_at, ends_at)."""
    wanted = ("rule", "status", "starts_at", "ends_at")
    names = list(client.scan_iter(match=keys.alert_state("*"), count=1000))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hmget(name, wanted)
    prefix = keys.alert_state("")
    out = []
    for name, values in zip(names, pipe.execute() if names else [], strict=True):
        state = {k: _text(v) for k, v in zip(wanted, values, strict=True) if v is not None}
        out.append({"fingerprint": _text(name).removeprefix(prefix), **state})
    return sorted(out, key=lambda s: (s.get("starts_at", ""), s["fingerprint"]))


def _float(value: str | None) -> float:
    try:
        return float(value) if value is not None else -1.0
    except ValueError:
        return -1.0


# --- get_optimization_insights -------------------------------------------------------------


def get_optimization_insights(
    client: redis.Redis, hours_back: float = 168, *, now: float | None = None
) -> dict[str, Any]:
    """Return recommendations [{priority, category, recommendation, potential_improvement,
    evidence, estimated_saving_usd, estimated_saving_s}] and the current anomalies."""
    until = _now(now)
    return optimization_insights(client, until - hours_back * HOUR, until)


def optimization_insights(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return :func:`get_optimization_insights`'s structure for the range ``[since, until)``."""
    recommendations = insights.recommend(insight_inputs(client, since, until))
    return {
        "timeframe_hours": (until - since) / HOUR,
        "generated_at": iso(until),
        "recommendations": recommendations,
        "anomalies": anomalies(client, until),
        "total_potential_saving_usd": sum(r["estimated_saving_usd"] or 0 for r in recommendations),
    }


def insight_inputs(client: redis.Redis, since: float, until: float) -> insights.InsightInputs:
    """Gather the usage, latency, call details and prompt statistics the rules read."""
    latency = _latency_rows(client, since, until, "model")
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
    return insights.InsightInputs(usage=usage, latency=lat, details=details, prompts=prompts)


def call_details(
    client: redis.Redis, since: float, until: float
) -> tuple[list[insights.ModelDetails], list[insights.PromptStats]]:
    """Merge the day call-detail hashes touching the range (whole UTC days)."""
    days = range(keys.bucket_start("d", since), int(until) + 1, DAY)
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.hgetall(keys.call_details(keys.bucket("d", day)))
    merged: dict[str, dict[str, float]] = {}
    for reply in pipe.execute():
        for field, value in reply.items():
            subject, _, metric = _text(field).rpartition("|")
            row = merged.setdefault(subject, {})
            number = float(value)
            row[metric] = (
                max(row.get(metric, 0.0), number)
                if metric.startswith("max")
                else row.get(metric, 0.0) + number
            )
    return _details_from(merged), _prompts_from(merged)


def _details_from(merged: Mapping[str, Mapping[str, float]]) -> list[insights.ModelDetails]:
    return [
        insights.ModelDetails(
            model=subject.removeprefix("model:"),
            weight=row.get("w", 0.0),
            retries_w=row.get("retries_w", 0.0),
            failed_w=row.get("failed_w", 0.0),
            failed_cost_w=row.get("failed_cost_w", 0.0),
            max_input_tokens=int(row.get("max_input_tokens", 0)),
        )
        for subject, row in sorted(merged.items())
        if subject.startswith("model:")
    ]


def _prompts_from(merged: Mapping[str, Mapping[str, float]]) -> list[insights.PromptStats]:
    return [
        insights.PromptStats(
            prompt_hash=subject.removeprefix("prompt:"),
            events=int(row.get("n", 0)),
            weight=row.get("w", 0.0),
            cost_w=row.get("cost_w", 0.0),
        )
        for subject, row in sorted(merged.items())
        if subject.startswith("prompt:")
    ]


def anomalies(client: redis.Redis, now: float, hours: int = 24) -> list[dict[str, Any]]:
    """Return anomalies of the last complete hour's cost and mean latency against the
    ``hours`` hours before it."""
    end = keys.bucket_start("h", now)
    starts = [end - (hours + 1 - i) * HOUR for i in range(hours + 1)]
    pipe = client.pipeline(transaction=False)
    for start in starts:
        pipe.hget(keys.cost("h", keys.bucket("h", start)), "total")
    cost = [_usd(int(v or 0)) for v in pipe.execute()]
    latency = []
    for start in starts:
        rows = query.latency_percentiles(client, start, start + HOUR, (0.5,), by="all")
        latency.append(rows[0]["mean"] if rows and rows[0]["mean"] is not None else 0.0)
    found = anomaly.scan({"cost_usd_per_hour": cost, "mean_latency_s": latency})
    return [a.as_dict() for a in found]


# --- get_session_profiling_analysis --------------------------------------------------------


def get_session_profiling_analysis(
    client: redis.Redis, session_id: str, *, limit: int | None = None
) -> dict[str, Any]:
    """Return one session's summary (exact calls, cost, success rate from rollups), its
    timeline of call events (oldest first, the newest ``limit``) and backend/thread usage.

    ``found`` is false when the sessions worker has nothing for this id (or it expired).
    """
    raw = client.hgetall(keys.session(session_id))
    fields = {_text(k): _text(v) for k, v in raw.items()}
    start = 0 if limit is None else -limit
    members = cast(list[bytes], client.zrange(keys.session_timeline(session_id), start, -1))
    timeline = [json.loads(m) for m in members]
    return {
        "session_id": session_id,
        "found": bool(fields or timeline),
        "summary": _session_summary(fields),
        "timeline": timeline,
        "backend_usage": _prefixed(fields, "backend:"),
        "model_usage": _prefixed(fields, "model:"),
        "thread_usage": _prefixed(fields, "thread:"),
    }


def _session_summary(fields: Mapping[str, str]) -> dict[str, Any]:
    """Exact counts from rollups; before the first rollup arrives, the call events' counts
    (``exact`` says which)."""
    calls, errors = int(fields.get("calls", 0)), int(fields.get("errors", 0))
    events = int(fields.get("events", 0))
    exact = calls > 0 or events == 0
    if not exact:
        calls, errors = events, int(fields.get("failed_events", 0))
    first, last = fields.get("first_seen"), fields.get("last_seen")
    return {
        "total_calls": calls,
        "errors": errors,
        "total_cost_usd": _usd(int(fields.get("cost_nanousd", 0))),
        "success_rate": _pct(calls - errors, calls),
        "exact": exact,
        "input_tokens": int(fields.get("input_tokens", 0)),
        "output_tokens": int(fields.get("output_tokens", 0)),
        "profiled_calls": events,
        "avg_latency": float(fields.get("latency_sum", 0.0)) / events if events else None,
        "first_seen": iso(float(first)) if first else None,
        "last_seen": iso(float(last)) if last else None,
        "duration_s": float(last) - float(first) if first and last else None,
    }


def _prefixed(fields: Mapping[str, str], prefix: str) -> dict[str, int]:
    return {
        k.removeprefix(prefix): int(v) for k, v in sorted(fields.items()) if k.startswith(prefix)
    }


# --- configure_profiling_settings ----------------------------------------------------------


def configure_profiling_settings(
    client: redis.Redis, *, base: Settings | None = None, **changes: bool | float | str | None
) -> dict[str, Any]:
    """Validate ``changes`` (runtime settings by name; None values are ignored), write them to
    the runtime-settings hash every producer polls, and return the effective settings.

    Raises SettingsError, writing nothing, for an unknown name or a bad value.
    """
    raw = {name: _raw(value) for name, value in changes.items() if value is not None}
    current = effective_settings(client, base)
    updated = current.with_overrides(raw)  # validates before anything is written
    if raw:
        client.hset(keys.RUNTIME_SETTINGS, mapping=dict(raw))  # type: ignore[arg-type]
    return updated.runtime_view()


def _raw(value: bool | float | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- reset_profiling_metrics ---------------------------------------------------------------


def reset_profiling_metrics(client: redis.Redis, confirm: bool = False) -> dict[str, Any]:
    """Delete llmtap's aggregates and state and empty its streams, only with ``confirm``.

    Without confirmation nothing changes and the answer lists what would go. Keys are found
    with SCAN on the ``llmtap:`` prefix. Streams are trimmed to zero entries rather than
    deleted, so running workers keep their consumer groups; the runtime settings and live
    workers' heartbeats are kept.
    """
    found = _reset_targets(client)
    kinds: dict[str, int] = {}
    for name, _ in found:
        kind = name.split(":")[1] if name.count(":") else name
        kinds[kind] = kinds.get(kind, 0) + 1
    streams = [name for name, kind in found if kind == "stream"]
    plain = [name for name, kind in found if kind != "stream"]
    answer: dict[str, Any] = {
        "confirmed": confirm,
        "keys": len(plain),
        "streams": sorted(streams),
        "by_kind": dict(sorted(kinds.items())),
        "kept": [*RESET_KEEPS, keys.heartbeat_pattern("*")],
    }
    if not confirm:
        return {**answer, "deleted": 0, "message": "nothing deleted; pass confirm=True"}
    return {**answer, "deleted": _delete(client, plain, streams)}


def _reset_targets(client: redis.Redis) -> list[tuple[str, str]]:
    names = [
        _text(n)
        for n in client.scan_iter(match=keys.ALL_KEYS_PATTERN, count=1000)
        if _text(n) not in RESET_KEEPS and not _text(n).startswith(RESET_KEEP_PREFIXES)
    ]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.type(name)
    return sorted(zip(names, (_text(t) for t in pipe.execute()), strict=True)) if names else []


def _delete(client: redis.Redis, plain: list[str], streams: list[str]) -> int:
    deleted = 0
    pipe = client.pipeline(transaction=False)
    for i in range(0, len(plain), 500):
        pipe.delete(*plain[i : i + 500])
    for stream in streams:
        pipe.xtrim(stream, maxlen=0, approximate=False)
    for reply in pipe.execute():
        deleted += int(reply)
    return deleted


# --- export_performance_report -------------------------------------------------------------


def get_report_data(
    client: redis.Redis,
    since: float,
    until: float,
    *,
    settings: Settings | None = None,
    monthly_budget_usd: float | None = None,
) -> dict[str, Any]:
    """Return the report model for ``[since, until)`` (see :func:`report.build_report`)."""
    current = effective_settings(client, settings)
    return report.build_report(
        since=since,
        until=until,
        cost=cost_analysis(client, since, until, monthly_budget_usd, top_n=10),
        performance=performance_analysis(client, since, until),
        insights=optimization_insights(client, since, until),
        alerts=alerts_summary(client, since, until, current),
        cost_series=cost_series(client, since, until),
        top_sessions=top_sessions(client, since, until),
    )


def cost_series(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return USD per model per hour (or per day beyond 4 days) over the range, for charts."""
    granularity = "h" if until - since <= 4 * DAY else "d"
    step = keys.BUCKET_SECONDS[granularity]
    starts = list(range(keys.bucket_start(granularity, since), int(until), step))
    pipe = client.pipeline(transaction=False)
    for start in starts:
        pipe.hgetall(keys.cost(granularity, keys.bucket(granularity, start)))
    series: dict[str, list[float]] = {}
    for i, reply in enumerate(pipe.execute()):
        for field, value in reply.items():
            name = _text(field)
            if name.startswith("model:"):
                points = series.setdefault(name.removeprefix("model:"), [0.0] * len(starts))
                points[i] = _usd(int(value))
    return {"granularity": granularity, "starts": starts, "by_model": series}


def top_sessions(
    client: redis.Redis, since: float, until: float, n: int = 10
) -> list[dict[str, Any]]:
    """Return the ``n`` most expensive sessions of the range (exact, from rollups)."""
    rows = query.cost_by(client, "session", since, until)
    ordered = sorted(rows.items(), key=lambda item: (-item[1]["cost_nanousd"], item[0]))[:n]
    return [
        {"session_id": s, "cost_usd": r["cost_usd"], "calls": r["calls"], "errors": r["errors"]}
        for s, r in ordered
    ]


def export_performance_report(
    client: redis.Redis,
    hours_back: float = 24,
    format: str = "json",
    output_path: str | None = None,
    *,
    now: float | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Build the report of the last ``hours_back`` hours, render it as ``format`` (md, html,
    json or csv) and, with ``output_path``, write it there. Returns the rendered content,
    its format, the period and the path. Raises ValueError for an unknown format.
    """
    until = _now(now)
    model = get_report_data(client, until - hours_back * HOUR, until, settings=settings)
    content = report.render(model, format)
    if output_path is not None:
        Path(output_path).write_text(content, encoding="utf-8")
    return {
        "format": format,
        "generated_at": model["generated_at"],
        "period": model["period"],
        "path": output_path,
        "summary": model["summary"],
        "content": content,
    }


# --- cached access -------------------------------------------------------------------------


class ProfilingTools:
    """The nine tools bound to one client, with the expensive results cached ``cache_ttl_s``.

    ``clock`` gives Unix seconds (tests pass a frozen one); a cached answer is reused while it
    is younger than the TTL and was asked with the same arguments.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        settings: Settings | None = None,
        cache_ttl_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.settings = settings
        self.cache_ttl_s = cache_ttl_s
        self.clock = clock
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self.hits = 0
        self.misses = 0

    def cache_stats(self) -> dict[str, Any]:
        """Return the cache's hits, misses, entries and TTL."""
        return {"enabled": True, "hits": self.hits, "misses": self.misses,
                "entries": len(self._cache), "ttl_s": self.cache_ttl_s}  # fmt: skip

    def clear_cache(self) -> None:
        """Forget every cached answer."""
        self._cache.clear()

    def _cached(self, key: tuple[Any, ...], compute: Callable[[float], Any]) -> Any:
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_ttl_s:
            self.hits += 1
            return hit[1]
        self.misses += 1
        value = compute(now)
        self._cache[key] = (now, value)
        return value

    def get_profiling_status(self) -> dict[str, Any]:
        """See :func:`get_profiling_status` (not cached: it is cheap and should be live)."""
        return get_profiling_status(self.client, self.settings)

    def get_performance_dashboard(
        self, hours_back: float = 24, include_cache_stats: bool = True
    ) -> dict[str, Any]:
        """See :func:`get_performance_dashboard`; cached."""
        out: dict[str, Any] = self._cached(
            ("dashboard", hours_back),
            lambda now: get_performance_dashboard(
                self.client, hours_back, False, now=now, settings=self.settings
            ),
        )
        return {**out, "cache_stats": self.cache_stats()} if include_cache_stats else out

    def get_cost_analysis_data(
        self, hours_back: float = 24, monthly_budget_usd: float | None = None
    ) -> dict[str, Any]:
        """See :func:`get_cost_analysis_data`; cached."""
        return dict(
            self._cached(
                ("cost", hours_back, monthly_budget_usd),
                lambda now: get_cost_analysis_data(
                    self.client, hours_back, monthly_budget_usd=monthly_budget_usd, now=now
                ),
            )
        )

    def get_performance_analysis(self, hours_back: float = 24) -> dict[str, Any]:
        """See :func:`get_performance_analysis`; cached."""
        return dict(
            self._cached(
                ("performance", hours_back),
                lambda now: get_performance_analysis(self.client, hours_back, now=now),
            )
        )

    def get_optimization_insights(self, hours_back: float = 168) -> dict[str, Any]:
        """See :func:`get_optimization_insights`; cached."""
        return dict(
            self._cached(
                ("insights", hours_back),
                lambda now: get_optimization_insights(self.client, hours_back, now=now),
            )
        )

    def get_session_profiling_analysis(self, session_id: str) -> dict[str, Any]:
        """See :func:`get_session_profiling_analysis` (not cached)."""
        return get_session_profiling_analysis(self.client, session_id)

    def configure_profiling_settings(self, **changes: bool | float | str | None) -> dict[str, Any]:
        """See :func:`configure_profiling_settings`; clears the cache."""
        self.clear_cache()
        return configure_profiling_settings(self.client, base=self.settings, **changes)

    def reset_profiling_metrics(self, confirm: bool = False) -> dict[str, Any]:
        """See :func:`reset_profiling_metrics`; clears the cache when it deletes."""
        if confirm:
            self.clear_cache()
        return reset_profiling_metrics(self.client, confirm)

    def export_performance_report(
        self,
        hours_back: float = 24,
        format: str = "json",
        output_path: str | None = None,
    ) -> dict[str, Any]:
        """See :func:`export_performance_report` (not cached)."""
        return export_performance_report(
            self.client, hours_back, format, output_path, now=self.clock(), settings=self.settings
        )
