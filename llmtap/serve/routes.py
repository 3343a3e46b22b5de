"""The HTTP API's endpoints as data: method, path, arguments and a synchronous handler over
``llmtap.tools`` and ``llmtap.read``. :mod:`llmtap.serve.app` runs each handler in a worker
thread (redis-py is synchronous); :mod:`llmtap.serve.openapi` describes the same table."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import redis

from llmtap import keys, tools
from llmtap.analyzers.rules import parse_duration
from llmtap.read import health, silences, status
from llmtap.read.alerts import alert_state, alert_states
from llmtap.read.bucketcache import BucketCache
from llmtap.read.params import BadArgument, Param
from llmtap.read.plugins import PluginRead
from llmtap.read.window import DAY, HOUR
from llmtap.serve import series
from llmtap.settings import RUNTIME_ATTRS, Settings

MAX_HOURS: Final = 24 * 400  # day buckets are kept about 400 days
REPORT_TYPES: Final = {
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
}


@dataclass(frozen=True)
class Context:
    """What a handler reads with: the client, the base settings and the clock."""

    client: redis.Redis
    settings: Settings | None = None
    clock: Callable[[], float] = time.time
    monthly_budget_usd: float | None = None
    # Decoded closed buckets shared by every request (llmtap.read.bucketcache), or None.
    buckets: BucketCache | None = None


@dataclass(frozen=True)
class Raw:
    """A handler's answer that is not JSON: a body, its media type, an optional file name."""

    body: str
    media_type: str
    filename: str | None = None


Handler = Callable[[Context, dict[str, Any]], Any]


@dataclass(frozen=True)
class Endpoint:
    """One route: method, path (Starlette syntax), summary, arguments and handler.

    ``write`` endpoints take a JSON body and need the token whenever one is configured;
    ``cached`` answers are reused for the app's short cache TTL.
    """

    method: str
    path: str
    summary: str
    handler: Handler
    params: tuple[Param, ...] = ()
    write: bool = False
    cached: bool = True
    tag: str = "read"
    body_description: str = ""
    path_params: tuple[str, ...] = field(default=())


def _hours(default: float) -> Param:
    return Param(
        "hours_back", "number", "the window: hours before now", default, False, 1 / 60, MAX_HOURS
    )


# --- read handlers -------------------------------------------------------------------------


def _status(ctx: Context, args: dict[str, Any]) -> Any:
    return tools.get_profiling_status(ctx.client, ctx.settings)


def _dashboard(ctx: Context, args: dict[str, Any]) -> Any:
    out = tools.get_performance_dashboard(
        ctx.client,
        args["hours_back"],
        args["include_cache_stats"],
        now=ctx.clock(),
        settings=ctx.settings,
        cache=ctx.buckets,
    )
    if args["include_cache_stats"] and ctx.buckets is not None:
        b = ctx.buckets
        out["cache_stats"] = {"enabled": True, "closed_buckets": len(b), "hits": b.hits,
                              "misses": b.misses}  # fmt: skip
    return out


def _overview(ctx: Context, args: dict[str, Any]) -> Any:
    now = ctx.clock()
    budget = args["monthly_budget_usd"] or ctx.monthly_budget_usd
    dash = tools.get_performance_dashboard(
        ctx.client, args["hours_back"], False, now=now, settings=ctx.settings, cache=ctx.buckets
    )
    today = tools.get_cost_analysis_data(
        ctx.client, today_hours(now), monthly_budget_usd=budget, top_n=1, now=now,
        cache=ctx.buckets,
    )  # fmt: skip
    perf, cost = dash["performance"], dash["cost_analysis"]
    return {
        "generated_at": dash["dashboard_metadata"]["generated_at"],
        "hours_back": args["hours_back"],
        "today_hours_back": today_hours(now),
        "today_cost_usd": today["total_cost_usd"],
        "month": today["burn_rate"],
        "window": {
            "cost_usd": cost["total_cost_usd"],
            "burn_rate": cost["burn_rate"],
            **{
                k: perf[k]
                for k in (
                    "total_calls",
                    "errors",
                    "success_rate",
                    "error_rate",
                    "calls_per_min",
                    "p50_latency",
                    "p95_latency",
                    "p99_latency",
                )
            },
            "calls": perf["total_calls"],
        },
        "alerts_firing": [_with_labels(ctx, a) for a in dash["alerts"]["firing"]],
        "workers_seen": status.pipeline_health(ctx.client)["workers_seen"],
    }


def today_hours(now: float) -> float:
    """Return the hours since UTC midnight (at least one minute): "today" as ``hours_back``."""
    return max((now % DAY) / HOUR, 1 / 60)


def _cost(ctx: Context, args: dict[str, Any]) -> Any:
    return tools.get_cost_analysis_data(
        ctx.client,
        args["hours_back"],
        monthly_budget_usd=args["monthly_budget_usd"],
        top_n=args["top_n"],
        now=ctx.clock(),
        cache=ctx.buckets,
    )


def _performance(ctx: Context, args: dict[str, Any]) -> Any:
    return tools.get_performance_analysis(
        ctx.client, args["hours_back"], now=ctx.clock(), cache=ctx.buckets
    )


def _insights(ctx: Context, args: dict[str, Any]) -> Any:
    return tools.get_optimization_insights(
        ctx.client, args["hours_back"], now=ctx.clock(), cache=ctx.buckets
    )


def _session(ctx: Context, args: dict[str, Any]) -> Any:
    return tools.get_session_profiling_analysis(ctx.client, args["session_id"], limit=args["limit"])


def _report(ctx: Context, args: dict[str, Any]) -> Any:
    fmt = args["format"]
    got = tools.export_performance_report(
        ctx.client, args["hours_back"], fmt, now=ctx.clock(), settings=ctx.settings,
        cache=ctx.buckets,
    )  # fmt: skip
    name = f"llmtap-report-{got['generated_at'].replace(':', '')}.{fmt}"
    return Raw(got["content"], REPORT_TYPES[fmt], name if args["download"] else None)


def _timeseries(ctx: Context, args: dict[str, Any]) -> Any:
    until = ctx.clock()
    return series.timeseries(ctx.client, until - args["hours_back"] * HOUR, until)


def _alerts(ctx: Context, args: dict[str, Any]) -> Any:
    now = ctx.clock()
    summary = tools.get_performance_dashboard(
        ctx.client, args["hours_back"], False, now=now, settings=ctx.settings, cache=ctx.buckets
    )["alerts"]
    states = alert_states(ctx.client)
    return {
        **summary,
        "pending": [s for s in states if s.get("status") == "pending"],
        "firing": [_with_labels(ctx, s) for s in summary["firing"]],
        "silences": silences.list_silences(ctx.client, now),
    }


def _with_labels(ctx: Context, state: dict[str, Any]) -> dict[str, Any]:
    doc = alert_state(ctx.client, state["fingerprint"]).get("doc") or {}
    labels = doc.get("labels") or {} if isinstance(doc, dict) else {}
    return {
        **state,
        "labels": labels,
        "summary": doc.get("summary", "") if doc else "",
        "severity": doc.get("severity", "") if doc else "",
    }


def _alert_history(ctx: Context, args: dict[str, Any]) -> Any:
    since = ctx.clock() - args["hours_back"] * HOUR
    states = alert_states(ctx.client)
    return {
        "since": since,
        "alerts": [
            s
            for s in states
            if _float(s.get("starts_at")) >= since or _float(s.get("ends_at")) >= since
        ],
    }


def _alert(ctx: Context, args: dict[str, Any]) -> Any:
    state = alert_state(ctx.client, args["fingerprint"])
    if not state:
        raise LookupError(f"no alert {args['fingerprint']}")
    return state


def _silences(ctx: Context, args: dict[str, Any]) -> Any:
    return {"silences": silences.list_silences(ctx.client, ctx.clock())}


def _pipeline(ctx: Context, args: dict[str, Any]) -> Any:
    groups = {g: health.group_stats(ctx.client, g) for g in keys.EVENT_GROUPS}
    return {**status.pipeline_health(ctx.client), "groups": groups}


# --- write handlers ------------------------------------------------------------------------


def _configure(ctx: Context, args: dict[str, Any]) -> Any:
    return tools.configure_profiling_settings(ctx.client, base=ctx.settings, **args["body"])


def _create_silence(ctx: Context, args: dict[str, Any]) -> Any:
    matchers = args["matchers"]
    if not matchers or not all(isinstance(v, str) and k for k, v in matchers.items()):
        raise BadArgument("matchers", "needs at least one label: string value")
    try:
        duration = parse_duration("duration", args["duration"])
    except ValueError as exc:
        raise BadArgument("duration", str(exc).removeprefix("duration: ")) from None
    if not 0 < duration <= silences.MAX_SILENCE_S:
        days = silences.MAX_SILENCE_S // 86_400
        raise BadArgument("duration", f"must be more than 0 and at most {days} days")
    return silences.create_silence(
        ctx.client, matchers, duration, ctx.clock(), args["comment"], args["created_by"]
    )


def _expire_silence(ctx: Context, args: dict[str, Any]) -> Any:
    if not silences.expire_silence(ctx.client, args["silence_id"]):
        raise LookupError(f"no silence {args['silence_id']}")
    return {"expired": args["silence_id"]}


def _reset(ctx: Context, args: dict[str, Any]) -> Any:
    return tools.reset_profiling_metrics(ctx.client, confirm=args["confirm"])


def _float(value: str | None) -> float:
    """Unix seconds of an ISO-8601 time (alert rows), or -1 when absent or unreadable."""
    try:
        return dt.datetime.fromisoformat(value).timestamp() if value else -1.0
    except ValueError:
        return -1.0


ENDPOINTS: Final = (
    Endpoint(
        "GET",
        "/api/v1/status",
        "settings, exact call counts and pipeline health",
        _status,
        cached=False,
    ),
    Endpoint(
        "GET",
        "/api/v1/overview",
        "the dashboard's overview: today's and this month's "
        "cost, projection, budget, calls/min, error rate, percentiles, firing alerts",
        _overview,
        (
            _hours(24),
            Param(
                "monthly_budget_usd",
                "number",
                "monthly budget (USD); default: serve --budget",
                None,
                minimum=0,
            ),
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/dashboard",
        "get_performance_dashboard",
        _dashboard,
        (_hours(24), Param("include_cache_stats", "boolean", "add cache statistics", True)),
    ),
    Endpoint(
        "GET",
        "/api/v1/cost",
        "get_cost_analysis_data",
        _cost,
        (
            _hours(24),
            Param("monthly_budget_usd", "number", "monthly budget (USD)", None, minimum=0),
            Param("top_n", "integer", "most expensive calls to list", 10, minimum=1, maximum=1000),
        ),
    ),
    Endpoint("GET", "/api/v1/performance", "get_performance_analysis", _performance, (_hours(24),)),
    Endpoint("GET", "/api/v1/insights", "get_optimization_insights", _insights, (_hours(168),)),
    Endpoint(
        "GET",
        "/api/v1/sessions/{session_id}",
        "get_session_profiling_analysis",
        _session,
        (Param("limit", "integer", "newest timeline entries", None, minimum=1, maximum=100_000),),
        path_params=("session_id",),
    ),
    Endpoint(
        "GET",
        "/api/v1/report",
        "export_performance_report (the rendered report)",
        _report,
        (
            _hours(24),
            Param("format", "string", "rendering", "json", enum=tuple(REPORT_TYPES)),
            Param("download", "boolean", "send as an attachment", False),
        ),
        cached=False,
    ),
    Endpoint(
        "GET",
        "/api/v1/timeseries",
        "calls, errors and latency percentiles over time",
        _timeseries,
        (_hours(24),),
    ),
    Endpoint(
        "GET",
        "/api/v1/alerts",
        "firing and pending alerts, fired and resolved in the window, thresholds, active silences",
        _alerts,
        (_hours(24),),
        tag="alerts",
    ),
    Endpoint(
        "GET",
        "/api/v1/alerts/history",
        "every alert state seen in the window",
        _alert_history,
        (_hours(24 * 7),),
        tag="alerts",
    ),
    Endpoint(
        "GET",
        "/api/v1/alerts/{fingerprint}",
        "one alert's state and document",
        _alert,
        path_params=("fingerprint",),
        tag="alerts",
        cached=False,
    ),
    Endpoint("GET", "/api/v1/silences", "silences in force", _silences, tag="alerts", cached=False),
    Endpoint(
        "GET",
        "/api/v1/pipeline",
        "stream and DLQ length; per worker group: lag, pending, consumers, counters",
        _pipeline,
        tag="pipeline",
    ),
    Endpoint(
        "POST",
        "/api/v1/configure",
        "configure_profiling_settings: change every running producer",
        _configure,
        (
            Param(
                "body",
                "object",
                "runtime settings by name: " + ", ".join(sorted(RUNTIME_ATTRS)),
                required=True,
            ),
        ),
        write=True,
        cached=False,
        tag="write",
        body_description="whole-body",
    ),
    Endpoint(
        "POST",
        "/api/v1/silences",
        "create a silence",
        _create_silence,
        (
            Param("matchers", "object", "labels to match (rule, model, backend...)", required=True),
            Param("duration", "string", "e.g. 30m, 2h, 1d (at most 30 days)", "2h"),
            Param("comment", "string", "why", ""),
            Param("created_by", "string", "who", ""),
        ),
        write=True,
        cached=False,
        tag="write",
    ),
    Endpoint(
        "POST",
        "/api/v1/silences/{silence_id}/expire",
        "end a silence now",
        _expire_silence,
        write=True,
        cached=False,
        tag="write",
        path_params=("silence_id",),
    ),
    Endpoint(
        "POST",
        "/api/v1/reset",
        "reset_profiling_metrics: with confirm true, delete "
        "llmtap's metrics; false lists what would go",
        _reset,
        (Param("confirm", "boolean", "must be given: true deletes", required=True),),
        write=True,
        cached=False,
        tag="write",
    ),
)


def plugin_endpoint(read: PluginRead) -> Endpoint:
    """Return the GET route of a plugin's read function (``/api/v1/x/<name>``): its arguments
    parsed like the tools', its answer cached like theirs."""

    def handle(ctx: Context, args: dict[str, Any]) -> Any:
        return read.read(ctx.client, args, ctx.clock())

    return Endpoint("GET", read.path, read.summary, handle, read.params, tag="plugins")
