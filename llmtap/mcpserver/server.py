"""``build_server``: an MCPServer with the original profiler's nine tools (same names, argument
names and JSON shapes as :mod:`llmtap.tools`) and llmtap's control-plane tools, on one client.

Every tool answers with structured content (the JSON object the Python function returns) and a
text rendering (a one-line summary and the same JSON). Tools that write (configure, reset,
silences) are not registered in read-only mode. Expected errors are ToolErrors (see
:mod:`.errors`): bad arguments, an unknown session, an unreachable Redis.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import redis
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from llmtap import tools
from llmtap.analyzers.rules import Rule
from llmtap.mcpserver import control
from llmtap.mcpserver.errors import guarded
from llmtap.read import silences, status
from llmtap.read.alerts import alerts_summary
from llmtap.read.window import DAY, HOUR
from llmtap.settings import LEVELS, Settings

INSTRUCTIONS: Final = (
    "llmtap profiles LLM calls: exact cost, calls, errors and tokens (from the producers' "
    "rollups, exact at any sampling rate) and latency percentiles (from sampled events). "
    "Costs are USD (and exact nano-USD); times are seconds; windows are hours back from now, "
    "in UTC. For 'what did we spend yesterday and on which model' call get_cost_analysis_data "
    "with day='yesterday' and read cost_by_model."
)
MAX_HOURS: Final = 400 * 24  # day buckets are kept about 400 days
READONLY_ENV: Final = "LLMTAP_MCP_READONLY"
REPORT_DIR_ENV: Final = "LLMTAP_REPORT_DIR"

# Argument and result types (module level: the SDK resolves them from the module's globals).
Result = Annotated[CallToolResult, dict[str, Any]]
Hours = Annotated[
    float, Field(gt=0, le=MAX_HOURS, description="window: hours back from now (UTC), > 0")
]
Budget = Annotated[
    float | None, Field(gt=0, description="monthly budget in USD for budget use and exhaustion")
]
Day = Annotated[
    str | None,
    Field(
        description="a whole UTC day instead of hours_back: 'today', 'yesterday' or YYYY-MM-DD",
        pattern=r"^(today|yesterday|\d{4}-\d{2}-\d{2})$",
    ),
]
TopN = Annotated[int, Field(ge=0, le=1000, description="how many costliest call events to list")]
SessionId = Annotated[str, Field(min_length=1, max_length=512, description="the session id")]
Limit = Annotated[int, Field(ge=1, le=10_000, description="newest timeline events returned")]
Flag = Annotated[bool | None, Field(description="true or false; omit to keep the current value")]
Level = Annotated[
    Literal["disabled", "basic", "standard", "detailed"] | None,
    Field(description="disabled, basic (timing), standard (+tokens, cost), detailed (+memory)"),
]
Rate = Annotated[
    float | None,
    Field(ge=0, le=1, description="share of calls sent as call events, 0..1 (default 0.1)"),
]
Seconds = Annotated[float | None, Field(ge=0, description="seconds; omit to keep")]
Usd = Annotated[float | None, Field(ge=0, description="USD; omit to keep")]
Format = Annotated[Literal["md", "html", "json", "csv"], Field(description="md, html, json or csv")]
FileName = Annotated[
    str | None,
    Field(description=f"a file name to also write the report to, inside {REPORT_DIR_ENV}"),
]
Matchers = Annotated[
    dict[str, str],
    Field(
        min_length=1,
        description='labels an alert must carry to be silenced, e.g. {"rule": "slow"} or '
        '{"model": "gpt-4o"}',
    ),
]
Minutes = Annotated[
    float,
    Field(
        ge=control.MIN_SILENCE_MINUTES,
        le=control.MAX_SILENCE_MINUTES,
        description="how long the silence lasts, in minutes (1 to 43200, 30 days)",
    ),
]
Comment = Annotated[str, Field(min_length=1, max_length=1000, description="why (required)")]

_READ_ONLY: Final = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_WRITES: Final = ToolAnnotations(read_only_hint=False, open_world_hint=False)
_DESTRUCTIVE: Final = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, open_world_hint=False
)


@dataclass(frozen=True)
class ServerConfig:
    """What one server needs besides its client: the URL it shows in errors (password hidden),
    read-only mode, settings, the alert rules file and the report directory."""

    url: str
    readonly: bool = False
    settings: Settings = field(default_factory=Settings)
    rules_path: str | None = None
    report_dir: str | None = None
    clock: Callable[[], float] = time.time

    @classmethod
    def from_env(cls, url: str, *, readonly: bool | None = None) -> ServerConfig:
        """Return the config from the environment (settings, LLMTAP_MCP_READONLY, the rules
        file LLMTAP_ALERT_RULES, LLMTAP_REPORT_DIR); raises SettingsError on a bad value."""
        env_readonly = os.environ.get(READONLY_ENV, "").strip().lower() in ("1", "true", "yes")
        return cls(
            url=url,
            readonly=env_readonly if readonly is None else readonly,
            settings=Settings.from_env(),
            rules_path=os.environ.get("LLMTAP_ALERT_RULES") or None,
            report_dir=os.environ.get(REPORT_DIR_ENV) or None,
        )


def result(data: dict[str, Any], summary: str) -> CallToolResult:
    """Return ``data`` as structured content with a text rendering (summary line and JSON)."""
    plain = json.loads(json.dumps(data, default=str))
    text = f"{summary}\n{json.dumps(plain, indent=1, sort_keys=True)}"
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=plain)


def day_window(day: str, now: float) -> tuple[float, float]:
    """Return (hours_back, now) covering the UTC day ``day`` (today: up to ``now``)."""
    today = now - now % DAY
    if day == "today":
        return max((now - today) / HOUR, 1 / 60), now
    if day == "yesterday":
        return 24.0, today
    try:
        start = dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        raise ValueError(f"day: {day!r} is not a date (YYYY-MM-DD)") from None
    if start > today:
        raise ValueError(f"day: {day} is in the future")
    return (24.0, start + DAY) if start < today else day_window("today", now)


def build_server(client: redis.Redis, config: ServerConfig) -> MCPServer:
    """Return an MCPServer with llmtap's tools and resources on ``client``.

    The client is not used until a tool is called; an unreachable Redis is a tool error.
    """
    app = MCPServer("llmtap", instructions=INSTRUCTIONS, version="0.1.0")
    tool = _registrar(app, config)
    _profiler_tools(tool, client, config)
    _control_tools(tool, client, config)
    if not config.readonly:
        _write_tools(tool, client, config)
    _resources(app, client, config)
    return app


Register = Callable[..., Callable[[Callable[..., Any]], Any]]


def _registrar(app: MCPServer, config: ServerConfig) -> Register:
    guard = guarded(config.url)

    def tool(annotations: ToolAnnotations = _READ_ONLY) -> Callable[[Callable[..., Any]], Any]:
        def register(fn: Callable[..., Any]) -> Any:
            app.add_tool(
                guard(fn), description=inspect.cleandoc(fn.__doc__ or ""), annotations=annotations
            )
            return fn

        return register

    return tool


def _profiler_tools(tool: Register, client: redis.Redis, config: ServerConfig) -> None:
    settings = config.settings

    @tool()
    def get_profiling_status() -> Result:
        """Profiling configuration and exact statistics. Returns enabled, level, sampling_rate
        (0..1), statistics {total_calls, profiled_calls, profiling_rate (% of calls sent as
        events), dropped_events, unpriced_calls, producers} summed over live producers, and
        pipeline {stream_length, dlq_length, workers: per worker lag, pending, live_consumers}."""
        got = tools.get_profiling_status(client, settings)
        stats = got["statistics"]
        return result(
            got,
            f"profiling {'on' if got['enabled'] else 'off'} ({got['level']}, sampling "
            f"{got['sampling_rate']:g}); {stats['total_calls']} calls, "
            f"{stats['profiled_calls']} profiled",
        )

    @tool()
    def get_performance_dashboard(
        hours_back: Hours = 24, include_cache_stats: bool = True
    ) -> Result:
        """Everything at once for the last hours_back hours (default 24): dashboard_metadata
        {generated_at, timeframe_hours, total_metrics_analyzed}, cost_analysis (USD, exact),
        performance (success_rate and error_rate in %, avg_latency and p50/p95/p99 in seconds,
        calls_per_min), efficiency (tokens per call, cost per 1k tokens), alerts (firing, fired,
        resolved, thresholds) and, with include_cache_stats (default true), cache_stats."""
        got = tools.get_performance_dashboard(
            client, hours_back, include_cache_stats, now=config.clock(), settings=settings
        )
        return result(got, f"dashboard of the last {hours_back:g} h")

    @tool()
    def get_cost_analysis_data(
        hours_back: Hours = 24,
        monthly_budget_usd: Budget = None,
        top_n: TopN = 10,
        day: Day = None,
    ) -> Result:
        """Exact spend over the last hours_back hours (default 24), or over one UTC day with
        day='yesterday' / 'today' / 'YYYY-MM-DD'. Returns total_cost_usd (and exact
        total_cost_nanousd), total_calls, cost_by_backend, cost_by_model, cost_by_tenant,
        cost_by_session (each {cost_usd, cost_nanousd, calls, errors, input_tokens,
        output_tokens}, costliest first), cost_per_1k_tokens_by_model, burn_rate (hourly, daily,
        month to date, projected month end with a 95% band; budget use with
        monthly_budget_usd) and most_expensive_operations (the top_n costliest calls)."""
        hours, now = day_window(day, config.clock()) if day else (hours_back, config.clock())
        got = tools.get_cost_analysis_data(
            client, hours, monthly_budget_usd=monthly_budget_usd, top_n=top_n, now=now
        )
        models = ", ".join(
            f"{m} ${row['cost_usd']:.6f}" for m, row in list(got["cost_by_model"].items())[:5]
        )
        window = f"UTC day {day}" if day else f"the last {hours_back:g} h"
        return result(
            got, f"${got['total_cost_usd']:.6f} over {window}; by model: {models or 'none'}"
        )

    @tool()
    def get_performance_analysis(hours_back: Hours = 24) -> Result:
        """Latency over the last hours_back hours (default 24), in seconds: latency (p50, p95,
        p99, mean, min, max per backend and model), overall, backend_comparison (fastest p95
        first), throughput (calls/min, tokens/s), error_rates (total, per backend, per model,
        in %), network_vs_processing and time_to_first_token."""
        got = tools.get_performance_analysis(client, hours_back, now=config.clock())
        return result(got, f"latency and throughput of the last {hours_back:g} h")

    @tool()
    def get_optimization_insights(hours_back: Hours = 168) -> Result:
        """Recommendations from the last hours_back hours (default 168, a week):
        recommendations [{priority, category, recommendation, potential_improvement, evidence,
        estimated_saving_usd, estimated_saving_s}] and the current cost/latency anomalies."""
        got = tools.get_optimization_insights(client, hours_back, now=config.clock())
        return result(got, f"{len(got['recommendations'])} recommendations")

    @tool()
    def get_session_profiling_analysis(session_id: SessionId, limit: Limit = 50) -> Result:
        """One session: summary {total_calls, total_cost_usd, success_rate (%), exact, errors,
        tokens, avg_latency (s), first/last seen}, timeline [{timestamp, thread_name, backend,
        model, cost, latency, success}] oldest first (the newest `limit`, default 50),
        backend_usage, model_usage and thread_usage. An unknown or expired session (kept 7 days
        after its last call) is an error."""
        got = tools.get_session_profiling_analysis(client, session_id, limit=limit)
        if not got["found"]:
            raise ToolError(
                f"unknown session {session_id!r}: no profiling data (never seen, or expired)"
            )
        summary = got["summary"]
        return result(
            got,
            f"session {session_id}: {summary['total_calls']} calls, "
            f"${summary['total_cost_usd']:.6f}",
        )

    @tool()
    def export_performance_report(
        hours_back: Hours = 24, format: Format = "json", output_path: FileName = None
    ) -> Result:
        """The stakeholder report of the last hours_back hours (default 24), rendered as format
        (json by default; md, html, csv): {format, generated_at, period, path, summary,
        content}. output_path (optional) is a plain file name written inside the server's
        report directory; refused in read-only mode or when no directory is configured."""
        path = _report_path(config, output_path)
        got = tools.export_performance_report(
            client, hours_back, format, path, now=config.clock(), settings=settings
        )
        return result(got, f"{format} report of the last {hours_back:g} h")


def _report_path(config: ServerConfig, name: str | None) -> str | None:
    if name is None:
        return None
    if config.readonly:
        raise ValueError("output_path: writing files is disabled in read-only mode")
    if not config.report_dir:
        raise ValueError(f"output_path: no report directory ({REPORT_DIR_ENV}) is configured")
    if Path(name).name != name or name in ("", ".", ".."):
        raise ValueError("output_path: a plain file name, without directories")
    return str(Path(config.report_dir) / name)


def _control_tools(tool: Register, client: redis.Redis, config: ServerConfig) -> None:
    @tool()
    def list_alerts(hours_back: Hours = 24) -> Result:
        """Alerts: firing (now), fired and resolved in the last hours_back hours (default 24),
        each {fingerprint, rule, status, starts_at, ends_at} (Unix seconds), and the
        thresholds in force (daily_cost_usd, latency_s, memory_mb)."""
        now = config.clock()
        got = alerts_summary(client, now - hours_back * HOUR, now, config.settings)
        return result(
            got, f"{len(got['firing'])} firing; {len(got['fired'])} fired in {hours_back:g} h"
        )

    @tool()
    def list_silences() -> Result:
        """The silences in force, soonest end first: silences [{id, matchers, comment,
        created_by, starts_at, ends_at}] (Unix seconds)."""
        found = silences.list_silences(client, config.clock())
        return result({"silences": found}, f"{len(found)} silences in force")

    @tool()
    def get_budgets(monthly_budget_usd: Budget = None) -> Result:
        """Budgets and their use this UTC month: month, month_to_date_usd, projection
        (projected month end with a 95% band, trend, budget exhaustion with
        monthly_budget_usd) and budgets [{rule, kind, scope, budget_usd, spent_usd, used_pct,
        projected_month_end_usd, thresholds_pct, thresholds_crossed}] from the budget rules of
        the alert rules file (LLMTAP_ALERT_RULES)."""
        got = control.budgets(client, _rules(config), config.clock(), monthly_budget_usd)
        return result(
            got,
            f"${got['month_to_date_usd']:.6f} spent in {got['month']}; "
            f"{len(got['budgets'])} budget rules",
        )

    @tool()
    def get_pipeline_health() -> Result:
        """Pipeline health: stream_length and dlq_length (entries), workers {cost, latency,
        sessions, alerts: lag (entries not yet read), pending (read, not acknowledged),
        live_consumers; notifier, reports: live_consumers} and workers_seen."""
        got = status.pipeline_health(client)
        return result(got, f"{got['workers_seen']} live workers; DLQ {got['dlq_length']} entries")


def _rules(config: ServerConfig) -> list[Rule]:
    return control.load_rules(config.rules_path, config.settings)


def _write_tools(tool: Register, client: redis.Redis, config: ServerConfig) -> None:
    @tool(_WRITES)
    def configure_profiling_settings(
        enabled: Flag = None,
        level: Level = None,
        sampling_rate: Rate = None,
        track_tokens: Flag = None,
        track_costs: Flag = None,
        track_memory: Flag = None,
        track_network: Flag = None,
        slow_call_s: Seconds = None,
        expensive_call_usd: Usd = None,
    ) -> Result:
        """Change every running producer's settings (applied within a few seconds); omitted
        arguments keep their value, so no argument just shows them. Validates like `llmtap
        configure` and writes nothing on a bad value. Returns the effective settings:
        enabled, level, sampling_rate, track_tokens, track_costs, track_memory,
        track_network, slow_call_s (always-kept slow call, s), expensive_call_usd."""
        changes = {
            "enabled": enabled,
            "level": level,
            "sampling_rate": sampling_rate,
            "track_tokens": track_tokens,
            "track_costs": track_costs,
            "track_memory": track_memory,
            "track_network": track_network,
            "slow_call_s": slow_call_s,
            "expensive_call_usd": expensive_call_usd,
        }
        got = tools.configure_profiling_settings(client, base=config.settings, **changes)
        changed = sorted(k for k, v in changes.items() if v is not None)
        return result(got, f"changed: {', '.join(changed) or 'nothing'}; effective settings")

    @tool(_DESTRUCTIVE)
    def reset_profiling_metrics(confirm: bool = False) -> Result:
        """Permanently delete llmtap's metrics (aggregates, sessions, alert state, silences)
        and empty its streams. Without confirm=true (the default is false) nothing is deleted
        and the answer says what would go: {confirmed, keys, streams, by_kind, kept, deleted,
        message}. The runtime settings and live workers' heartbeats are kept."""
        got = tools.reset_profiling_metrics(client, confirm)
        verb = "deleted" if confirm else "nothing deleted; would delete"
        return result(got, f"{verb} {got['keys']} keys and empty {len(got['streams'])} streams")

    @tool(_WRITES)
    def create_silence(
        matchers: Matchers,
        comment: Comment,
        duration_minutes: Minutes = 120,
        created_by: str = "mcp",
    ) -> Result:
        """Silence the alerts whose labels match all of matchers for duration_minutes
        (default 120, at most 30 days); a comment is required. Returns the silence {id,
        matchers, comment, created_by, starts_at, ends_at}; end it early with expire_silence."""
        got = control.create_silence(
            client, matchers, duration_minutes, comment, created_by, config.clock()
        )
        return result(got, f"silence {got['id']} until {got['ends_at']:.0f} (Unix s)")

    @tool(_WRITES)
    def expire_silence(silence_id: Annotated[str, Field(min_length=1)]) -> Result:
        """End a silence now, by the id create_silence or list_silences gave. Returns
        {id, expired: true}; an unknown id is an error."""
        if not silences.expire_silence(client, silence_id):
            raise ToolError(f"unknown silence {silence_id!r} (never made, or already ended)")
        return result({"id": silence_id, "expired": True}, f"silence {silence_id} ended")


def _resources(app: MCPServer, client: redis.Redis, config: ServerConfig) -> None:
    guard = guarded(config.url, ResourceError)

    @app.resource(
        "llmtap://report/latest.md",
        name="latest-report",
        description="The report of the last 24 hours as Markdown",
        mime_type="text/markdown",
    )
    def latest_report() -> str:
        got = guard(tools.export_performance_report)(
            client, 24, "md", None, now=config.clock(), settings=config.settings
        )
        return str(got["content"])

    @app.resource(
        "llmtap://settings",
        name="settings",
        description="The effective runtime settings and profiling levels, as JSON",
        mime_type="application/json",
    )
    def settings_resource() -> str:
        got = guard(tools.get_profiling_status)(client, config.settings)
        keep = ("enabled", "level", "sampling_rate")
        return json.dumps({**{k: got[k] for k in keep}, "levels": list(LEVELS)})
