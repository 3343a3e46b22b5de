"""The read-side commands: ``status``, ``dashboard``, ``cost``, ``latency``, ``session``,
``insights``, ``configure``, ``reset`` and ``report``, thin shells over :mod:`llmtap.read.tools`.

Every command prints a rich table for people or, with ``--json``, one JSON object for scripts.
The server is ``--url``, else ``LLMTAP_REDIS_URL``, else ``redis://127.0.0.1:6379/0``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import redis

from llmtap.analyzers import report
from llmtap.read import tools
from llmtap.read.report import get_report_data
from llmtap.read.window import iso
from llmtap.settings import LEVELS, RUNTIME_ATTRS, Settings

DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"
_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)([mhdw])$")
_UNIT_S: Final = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
Handler = Callable[[redis.Redis, argparse.Namespace], Any]


def parse_time(raw: str, now: float) -> float:
    """Return Unix seconds for ``raw``: a duration back from ``now`` (``90m``, ``24h``, ``7d``,
    ``2w``), an ISO date or time (UTC unless it says otherwise) or Unix seconds.

    Raises ValueError naming the accepted forms.
    """
    value = raw.strip()
    match = _DURATION.match(value)
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{raw!r}: expected a duration (90m, 24h, 7d, 2w), an ISO date/time or Unix seconds"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def add_parsers(subparsers: Any) -> None:
    """Register the read-side commands on the ``llmtap`` parser."""
    _command(
        subparsers, "status", "profiling settings, exact call counts, pipeline health", _status
    )
    dash = _command(subparsers, "dashboard", "refreshing terminal dashboard", _dashboard)
    _hours(dash, 24)
    dash.add_argument("--refresh", type=float, default=5.0, help="seconds between refreshes")
    dash.add_argument("--once", action="store_true", help="draw once and exit")
    cost = _command(subparsers, "cost", "cost by backend, model, session; burn rate", _cost)
    _hours(cost, 24)
    cost.add_argument("--budget", type=float, help="monthly budget (USD) for the projection")
    _hours(_command(subparsers, "latency", "percentiles, throughput, error rates", _latency), 24)
    session = _command(subparsers, "session", "one session's summary and timeline", _session)
    session.add_argument("session_id", metavar="ID")
    session.add_argument("--limit", type=int, default=50, help="newest timeline events shown")
    _hours(_command(subparsers, "insights", "optimization recommendations", _insights), 168)
    _add_configure(subparsers)
    reset = _command(subparsers, "reset", "delete llmtap's metrics (needs --yes)", _reset)
    reset.add_argument("--yes", action="store_true", help="really delete")
    _add_report(subparsers)


def _command(subparsers: Any, name: str, summary: str, handler: Handler) -> Any:
    parser = subparsers.add_parser(name, help=summary, description=summary)
    parser.add_argument("--url", help="Redis URL (default: LLMTAP_REDIS_URL)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=lambda args: _run(handler, args))
    return parser


def _hours(parser: argparse.ArgumentParser, default: float) -> None:
    parser.add_argument("--hours", type=float, default=default, help=f"window (default {default})")


def _add_configure(subparsers: Any) -> None:
    parser = _command(
        subparsers, "configure", "change every running producer's settings", _configure
    )
    parser.add_argument("--enabled", choices=("true", "false"))
    parser.add_argument("--level", choices=LEVELS)
    parser.add_argument("--sampling-rate", type=float)
    for name in ("tokens", "costs", "memory", "network"):
        parser.add_argument(f"--track-{name}", choices=("true", "false"))
    parser.add_argument("--slow-call-s", type=float)
    parser.add_argument("--expensive-call-usd", type=float)


def _add_report(subparsers: Any) -> None:
    parser = _command(subparsers, "report", "write a report for a period", _report)
    parser.add_argument("--since", default="24h", help="start: 24h, 7d, ISO time, Unix s")
    parser.add_argument("--until", help="end (default: now)")
    parser.add_argument("--format", choices=report.FORMATS, default="md")
    parser.add_argument("--out", help="file to write (default: standard output)")


def _run(handler: Handler, args: argparse.Namespace) -> int:
    url = args.url or Settings.from_env().redis_url or DEFAULT_URL
    client = redis.Redis.from_url(url)
    try:
        result = handler(client, args)
    except redis.ConnectionError as exc:
        print(f"llmtap: cannot reach Redis: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"llmtap: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()
    if result is None:
        return 0
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0


# --- handlers: each returns the JSON-ready result, printing tables unless --json ------------


def _status(client: redis.Redis, args: argparse.Namespace) -> Any:
    got = tools.get_profiling_status(client)
    if not args.json:
        stats = got["statistics"]
        rows = [
            ["enabled", got["enabled"]],
            ["level", got["level"]],
            ["sampling rate", got["sampling_rate"]],
            *[[k, v] for k, v in stats.items()],
            ["stream length", got["pipeline"]["stream_length"]],
            ["DLQ length", got["pipeline"]["dlq_length"]],
            ["live workers", got["pipeline"]["workers_seen"]],
        ]
        _table("llmtap status", ["", "value"], rows)
        workers = got["pipeline"]["workers"]
        _table(
            "workers",
            ["worker", "lag", "pending", "live"],
            [[w, v.get("lag"), v.get("pending"), v["live_consumers"]] for w, v in workers.items()],
        )
    return got


def _cost(client: redis.Redis, args: argparse.Namespace) -> Any:
    got = tools.get_cost_analysis_data(client, args.hours, monthly_budget_usd=args.budget)
    if not args.json:
        for title in ("cost_by_backend", "cost_by_model", "cost_by_session"):
            rows = [[k, v["cost_usd"], v["calls"], v["errors"]] for k, v in got[title].items()]
            _table(title.replace("_", " "), ["", "USD", "calls", "errors"], rows[:20])
        _table("burn rate", ["", "value"], [[k, v] for k, v in got["burn_rate"].items()])
        top = got["most_expensive_operations"]
        _table(
            "most expensive calls",
            ["call", "model", "USD", "session"],
            [[o["call_id"], o["model"], o["cost_usd"], o["session"]] for o in top],
        )
    return got


def _latency(client: redis.Redis, args: argparse.Namespace) -> Any:
    got = tools.get_performance_analysis(client, args.hours)
    if not args.json:
        _table(
            "latency (s)",
            ["backend", "model", "calls", "p50", "p95", "p99"],
            [
                [r["backend"], r["model"], r["weighted_count"], r["p50"], r["p95"], r["p99"]]
                for r in got["latency"]
            ],
        )
        errors = got["error_rates"]["by_model"]
        _table(
            "error rates",
            ["model", "calls", "errors", "rate"],
            [[m, r["calls"], r["errors"], r["error_rate"]] for m, r in errors.items()],
        )
        flow = got["throughput"]
        _table("throughput", ["", "value"], [[k, v] for k, v in flow.items() if k != "by_model"])
    return got


def _session(client: redis.Redis, args: argparse.Namespace) -> Any:
    got = tools.get_session_profiling_analysis(client, args.session_id, limit=args.limit)
    if not got["found"]:
        print(f"llmtap: no data for session {args.session_id!r}", file=sys.stderr)
    if not args.json:
        _table(
            f"session {args.session_id}", ["", "value"], [[k, v] for k, v in got["summary"].items()]
        )
        _table(
            "timeline",
            ["time", "thread", "backend", "model", "USD", "latency s"],
            [
                [
                    iso(e["timestamp"]),
                    e["thread_name"],
                    e["backend"],
                    e["model"],
                    e["cost"],
                    e["latency"],
                ]
                for e in got["timeline"]
            ],
        )
    return got


def _insights(client: redis.Redis, args: argparse.Namespace) -> Any:
    got = tools.get_optimization_insights(client, args.hours)
    if not args.json:
        _table(
            "recommendations",
            ["priority", "category", "recommendation", "improvement"],
            [
                [i["priority"], i["category"], i["recommendation"], i["potential_improvement"]]
                for i in got["recommendations"]
            ],
        )
        _table(
            "anomalies",
            ["series", "value", "baseline", "score"],
            [[a["series"], a["value"], a["baseline_median"], a["score"]] for a in got["anomalies"]],
        )
    return got


def _configure(client: redis.Redis, args: argparse.Namespace) -> Any:
    changes = {
        name: getattr(args, name)
        for name in sorted(RUNTIME_ATTRS)
        if getattr(args, name, None) is not None
    }
    got = tools.configure_profiling_settings(client, **changes)
    if not args.json:
        _table("effective runtime settings", ["", "value"], [[k, v] for k, v in got.items()])
    return got


def _reset(client: redis.Redis, args: argparse.Namespace) -> Any:
    got = tools.reset_profiling_metrics(client, confirm=args.yes)
    if not args.json:
        verb = "deleted" if args.yes else "would delete (run again with --yes)"
        print(f"llmtap reset: {verb} {got['keys']} keys; streams emptied: {got['streams']}")
        _table("keys by kind", ["kind", "keys"], [[k, v] for k, v in got["by_kind"].items()])
    return got


def _report(client: redis.Redis, args: argparse.Namespace) -> Any:
    now = time.time()
    until = parse_time(args.until, now) if args.until else now
    since = parse_time(args.since, until)
    model = get_report_data(client, since, until)
    content = report.render(model, args.format)
    if args.out:
        Path(args.out).write_text(content, encoding="utf-8")
        print(f"llmtap: wrote {args.format} report to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(content)
    return None


def _dashboard(client: redis.Redis, args: argparse.Namespace) -> Any:
    cached = tools.ProfilingTools(client, cache_ttl_s=max(args.refresh - 0.5, 0.0))
    if args.json or args.once:
        got = cached.get_performance_dashboard(args.hours)
        if not args.json:
            _print(_dashboard_view(got))
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
        _rich_table(
            name, ["", "value"], [[k, v] for k, v in dash[name].items() if not isinstance(v, dict)]
        )
        for name in ("cost_analysis", "performance", "efficiency")
    ]
    by_model = dash["cost_analysis"]["cost_by_model"]
    panels.append(
        _rich_table("cost by model", ["model", "USD"], [[m, v] for m, v in by_model.items()])
    )
    firing = dash["alerts"]["firing"]
    panels.append(
        _rich_table(
            "firing alerts",
            ["rule", "since"],
            [[a.get("rule"), a.get("starts_at")] for a in firing],
        )
    )
    return Columns(panels, title=title)


# --- output ---------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _rich_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for name in header:
        table.add_column(name)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    return table


def _print(renderable: Any) -> None:
    from rich.console import Console

    Console().print(renderable)


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    _print(_rich_table(title, header, rows))
