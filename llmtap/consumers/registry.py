"""Every worker kind that reads the events stream, by name: its group and how to build it.

Adding a worker (alerts, sessions, notifier, reports) is one entry here plus its module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from llmtap import keys
from llmtap.consumers.runtime.consumer import Processor
from llmtap.consumers.runtime.context import WorkerContext

# A coroutine given the context, the stop event and burst mode.
Task = Callable[[WorkerContext, asyncio.Event, bool], Awaitable[None]]


@dataclass(frozen=True)
class WorkerSpec:
    """A worker kind: its name, consumer group, one-line summary and processor factory.

    ``build(ctx)`` runs once per committed unit, so it only assembles what ``ctx`` holds.
    """

    name: str
    group: str
    summary: str
    build: Callable[[WorkerContext], Processor]
    # A coroutine run beside the consumer until stop (the alerts worker's tick).
    sidecar: Task | None = None
    # A worker that does not read the events stream runs this instead of a consumer.
    runner: Task | None = None


def _cost(ctx: WorkerContext) -> Processor:
    from llmtap.consumers.cost import CostProcessor

    return CostProcessor(ctx.retention, top_n=ctx.runtime.top_n)


def _latency(ctx: WorkerContext) -> Processor:
    from llmtap.consumers.latency import LatencyProcessor

    return LatencyProcessor(ctx.retention)


def _sessions(ctx: WorkerContext) -> Processor:
    from llmtap.consumers.sessions import SessionsProcessor

    return SessionsProcessor(ctx.retention, max_history=ctx.settings.max_history)


def _alerts(ctx: WorkerContext) -> Processor:
    from llmtap.consumers.alerts.processor import AlertsProcessor
    from llmtap.consumers.alerts.rules_file import rules_from_env

    # Per unit on purpose: the rules file is read again when its mtime changes.
    return AlertsProcessor(rules_from_env(ctx.environ, ctx.settings))


async def _alerts_tick(ctx: WorkerContext, stop: asyncio.Event, burst: bool) -> None:
    from llmtap.consumers.alerts.evaluator import run_ticks
    from llmtap.consumers.alerts.rules_file import rules_from_env

    rules = ctx.rules or tuple(rules_from_env(ctx.environ, ctx.settings))
    await run_ticks(ctx.url, stop, rules=rules, interval_s=ctx.tick_s, once=burst)


def _otel(ctx: WorkerContext) -> Processor:
    from llmtap.connectors.otel import OtelProcessor
    from llmtap.connectors.otel_export import OtelConfig

    return OtelProcessor(OtelConfig.from_env(ctx.environ))


def _not_on_events(ctx: WorkerContext) -> Processor:
    raise ValueError("the notifier reads llmtap:notify, not the events stream: its runner runs it")


async def _notifier(ctx: WorkerContext, stop: asyncio.Event, burst: bool) -> None:
    from llmtap.consumers.notify.notifier import run_notifier

    await run_notifier(ctx.url, stop, burst=burst, receivers=ctx.receivers)


async def _reports(ctx: WorkerContext, stop: asyncio.Event, burst: bool) -> None:
    from llmtap.consumers.reports import ReportConfig, run_reports

    config = ctx.reports or ReportConfig.from_env(ctx.environ)
    await run_reports(
        ctx.url, stop, burst, config=config, heartbeat_ttl_s=ctx.runtime.heartbeat_ttl_s
    )


WORKERS: dict[str, WorkerSpec] = {
    "cost": WorkerSpec(
        "cost", keys.GROUP_COST, "exact cost, calls and tokens per bucket and dimension", _cost
    ),
    "latency": WorkerSpec(
        "latency", keys.GROUP_LATENCY, "latency sketches per backend, model and bucket", _latency
    ),
    "sessions": WorkerSpec(
        "sessions", keys.GROUP_SESSIONS, "per-session summaries and timelines", _sessions
    ),
    "alerts": WorkerSpec(
        "alerts",
        keys.GROUP_ALERTS,
        "alert rules on calls and windows, state and the notify outbox",
        _alerts,
        sidecar=_alerts_tick,
    ),
    "otel": WorkerSpec(
        "otel", keys.GROUP_OTEL, "GenAI metrics (and spans) over OTLP/HTTP to a collector", _otel
    ),
    "notifier": WorkerSpec(
        "notifier",
        keys.GROUP_NOTIFIER,
        "delivers llmtap:notify to Slack and signed webhooks",
        _not_on_events,
        runner=_notifier,
    ),
    "reports": WorkerSpec(
        "reports",
        keys.GROUP_REPORTS,
        "scheduled reports (APScheduler), once per period across replicas",
        _sessions,  # unused: the runner replaces the consumer
        runner=_reports,
    ),
}


def spec(name: str) -> WorkerSpec:
    """Return the worker called ``name``; raise KeyError naming the known ones."""
    try:
        return WORKERS[name]
    except KeyError:
        raise KeyError(f"unknown worker {name!r}; known: {', '.join(WORKERS)}") from None
