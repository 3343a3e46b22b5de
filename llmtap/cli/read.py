"""The read-side commands: ``status``, ``dashboard``, ``cost``, ``latency``, ``session``,
``insights``, ``configure`` and ``reset``, thin shells over :mod:`llmtap.read.tools`.

Every command prints a rich table for people or, with ``--json``, one JSON object for scripts.
The server is ``--url``, else ``LLMTAP_REDIS_URL``, else the server a running ``llmtap up``
recorded, else ``redis://127.0.0.1:6379/0`` (:func:`llmtap.cli.common.redis_url`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

import redis

from llmtap.analyzers import units
from llmtap.cli import common
from llmtap.read import tools
from llmtap.read.window import iso
from llmtap.settings import LEVELS, RUNTIME_ATTRS


def add_parsers(subparsers: Any) -> None:
    """Register the read-side commands on the ``llmtap`` parser."""

    def command(name: str, summary: str, handler: common.Handler) -> Any:
        return common.add_command(subparsers, name, summary, handler)

    command("status", "profiling settings, exact call counts, pipeline health", _status)
    dash = _hours(command("dashboard", "refreshing terminal dashboard", _dashboard), 24)
    dash.add_argument("--refresh", type=float, default=5.0, help="seconds between refreshes")
    dash.add_argument("--once", action="store_true", help="draw once and exit")
    cost = _hours(command("cost", "cost by backend, model, session; burn rate", _cost), 24)
    cost.add_argument("--budget", type=float, help="monthly budget (USD) for the projection")
    _hours(command("latency", "percentiles, throughput, error rates", _latency), 24)
    session = command("session", "one session's summary and timeline", _session)
    session.add_argument("session_id", metavar="ID")
    session.add_argument("--limit", type=int, default=50, help="newest timeline events shown")
    _hours(command("insights", "optimization recommendations", _insights), 168)
    _add_configure(command("configure", "change every running producer's settings", _configure))
    reset = command("reset", "delete llmtap's metrics (needs --yes)", _reset)
    reset.add_argument("--yes", action="store_true", help="really delete")


def _hours(parser: argparse.ArgumentParser, default: float) -> argparse.ArgumentParser:
    parser.add_argument("--hours", type=float, default=default, help=f"window (default {default})")
    return parser


def _add_configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--enabled", choices=("true", "false"))
    parser.add_argument("--level", choices=LEVELS)
    parser.add_argument("--sampling-rate", type=float)
    for name in ("tokens", "costs", "memory", "network"):
        parser.add_argument(f"--track-{name}", choices=("true", "false"))
    parser.add_argument("--slow-call-s", type=float)
    parser.add_argument("--expensive-call-usd", type=float)


# --- handlers: each returns the JSON-ready result, printing tables unless --json ------------


def _status(client: redis.Redis, args: argparse.Namespace) -> Any:
    got = tools.get_profiling_status(client)
    if not args.json:
        stats = got["statistics"]
        rows = [
            ["enabled", got["enabled"]],
            ["level", got["level"]],
            ["sampling rate", units.pct(got["sampling_rate"])],
            ["settings from", got["settings_source"]],
            *_fields(stats),
            ["stream length", got["pipeline"]["stream_length"]],
            ["DLQ length", got["pipeline"]["dlq_length"]],
            ["live workers", got["pipeline"]["workers_seen"]],
        ]
        common.table("llmtap status", ["", "value"], rows)
        _producers_table(got["producers"])
        for item in got["settings_disagreements"]:
            print(_disagreement(item))
        workers = got["pipeline"]["workers"]
        common.table(
            "workers",
            ["worker", "lag", "pending", "live"],
            [[w, v.get("lag"), v.get("pending"), v["live_consumers"]] for w, v in workers.items()],
        )
    return got


def _producers_table(producers: list[dict[str, Any]]) -> None:
    header = ["producer", "enabled", "level", "sampling", "calls", "profiled", "dropped", "rollup"]
    rows = [
        [p["producer_id"], units.number(p["enabled"]), units.number(p["level"]),
         units.pct(p["sampling_rate"]), p["total_calls"], p["profiled_calls"],
         p["dropped_events"], units.number(p["last_rollup_at"])]
        for p in producers
    ]  # fmt: skip
    common.table("producers", header, rows)


def _disagreement(item: Mapping[str, Any]) -> str:
    name = item["setting"]
    each = ", ".join(f"{p} {_setting(name, v)}" for p, v in item["producers"].items())
    configured = _setting(name, item["configured"])
    return f"llmtap status: producers disagree on {name}: {each} (configured: {configured})"


def _cost(client: redis.Redis, args: argparse.Namespace) -> Any:
    got = tools.get_cost_analysis_data(client, args.hours, monthly_budget_usd=args.budget)
    if not args.json:
        for title in ("cost_by_backend", "cost_by_model", "cost_by_session"):
            rows = [
                [k, units.usd(v["cost_usd"]), v["calls"], v["errors"]]
                for k, v in got[title].items()
            ]
            common.table(title.replace("_", " "), ["", "cost", "calls", "errors"], rows[:20])
        common.table("burn rate", ["", "value"], _fields(got["burn_rate"]))
        top = got["most_expensive_operations"]
        common.table(
            "most expensive calls",
            ["call", "model", "cost", "session"],
            [[o["call_id"], o["model"], units.usd(o["cost_usd"]), o["session"]] for o in top],
        )
    return got


def _latency(client: redis.Redis, args: argparse.Namespace) -> Any:
    got = tools.get_performance_analysis(client, args.hours)
    if not args.json:
        common.table(
            "latency",
            ["backend", "model", "calls", "p50", "p95", "p99"],
            [
                [r["backend"], r["model"], units.number(r["weighted_count"]),
                 units.ms(r["p50"]), units.ms(r["p95"]), units.ms(r["p99"])]
                for r in got["latency"]
            ],
        )  # fmt: skip
        errors = got["error_rates"]["by_model"]
        common.table(
            "error rates",
            ["model", "calls", "errors", "rate"],
            [[m, r["calls"], r["errors"], units.pct(r["error_rate"])] for m, r in errors.items()],
        )
        common.table("throughput", ["", "value"], _fields(got["throughput"]))
    return got


def _session(client: redis.Redis, args: argparse.Namespace) -> Any:
    got = tools.get_session_profiling_analysis(client, args.session_id, limit=args.limit)
    if not got["found"]:
        raise common.NotFoundError(f"no data for session {args.session_id!r}")
    if not args.json:
        common.table(f"session {args.session_id}", ["", "value"], _fields(got["summary"]))
        common.table(
            "timeline",
            ["time", "thread", "backend", "model", "cost", "latency"],
            [
                [iso(e["timestamp"]), e["thread_name"], e["backend"], e["model"],
                 units.usd(e["cost"]), units.ms(e["latency"])]
                for e in got["timeline"]
            ],
        )  # fmt: skip
    return got


def _insights(client: redis.Redis, args: argparse.Namespace) -> Any:
    got = tools.get_optimization_insights(client, args.hours)
    if not args.json:
        common.table(
            "recommendations",
            ["priority", "category", "recommendation", "improvement"],
            [
                [i["priority"], i["category"], i["recommendation"], i["potential_improvement"]]
                for i in got["recommendations"]
            ],
        )
        common.table(
            "anomalies",
            ["series", "value", "baseline", "score"],
            [
                [a["series"], units.human(a["series"], a["value"]),
                 units.human(a["series"], a["baseline_median"]), units.number(a["score"])]
                for a in got["anomalies"]
            ],
        )  # fmt: skip
    return got


def _configure(client: redis.Redis, args: argparse.Namespace) -> Any:
    changes = {
        name: getattr(args, name)
        for name in sorted(RUNTIME_ATTRS)
        if getattr(args, name, None) is not None
    }
    got = tools.configure_profiling_settings(client, **changes)
    if not args.json:
        common.table("effective runtime settings", ["", "value"], _fields(got))
    return got


def _reset(client: redis.Redis, args: argparse.Namespace) -> Any:
    got = tools.reset_profiling_metrics(client, confirm=args.yes)
    if not args.json:
        if args.yes:
            done = f"deleted {got['deleted']} keys and {got['deleted_stream_entries']}"
        else:
            done = f"would delete {got['keys']} keys and {got['stream_entries']}"
        print(f"llmtap reset: {done} stream entries in {', '.join(got['streams']) or 'no streams'}"
              + ("" if args.yes else " (run again with --yes)"))  # fmt: skip
        common.table("keys by kind", ["kind", "keys"], [[k, v] for k, v in got["by_kind"].items()])
    return got


def _dashboard(client: redis.Redis, args: argparse.Namespace) -> Any:
    cached = tools.ProfilingTools(client, cache_ttl_s=max(args.refresh - 0.5, 0.0))
    if args.json or args.once:
        got = cached.get_performance_dashboard(args.hours)
        if not args.json:
            common.show(_dashboard_view(got))
        return got
    from rich.live import Live

    with Live(_dashboard_view(cached.get_performance_dashboard(args.hours)), screen=False) as live:
        try:
            while True:
                time.sleep(args.refresh)
                live.update(_dashboard_view(cached.get_performance_dashboard(args.hours)))
        except KeyboardInterrupt:
            return None


def _dashboard_view(dash: Mapping[str, Any]) -> Any:
    from rich.columns import Columns

    meta = dash["dashboard_metadata"]
    title = f"llmtap - last {meta['timeframe_hours']} h at {meta['generated_at']}"
    panels = [
        common.rich_table(name, ["", "value"], _fields(dash[name]))
        for name in ("cost_analysis", "performance", "efficiency")
    ]
    by_model = dash["cost_analysis"]["cost_by_model"]
    panels.append(
        common.rich_table(
            "cost by model", ["model", "cost"], [[m, units.usd(v)] for m, v in by_model.items()]
        )
    )
    firing = dash["alerts"]["firing"]
    panels.append(
        common.rich_table(
            "firing alerts",
            ["rule", "since"],
            [[a.get("rule"), a.get("starts_at")] for a in firing],
        )
    )
    return Columns(panels, title=title)


def _setting(name: str, value: Any) -> str:
    return units.pct(value) if name == "sampling_rate" else units.number(value)


def _fields(values: Mapping[str, Any]) -> list[list[str]]:
    """Return (name, value for people) rows of a flat JSON object; nested objects are skipped."""
    return [
        [name, units.human(name, value)]
        for name, value in values.items()
        if not isinstance(value, dict | list)
    ]
