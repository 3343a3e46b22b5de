"""Every worker kind that reads the events stream, by name: its group and how to build it.

Adding a worker (alerts, sessions, notifier, reports) is one entry here plus its module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from llmtap import keys
from llmtap.consumers.runtime.config import Retention, RuntimeConfig
from llmtap.consumers.runtime.consumer import Processor


@dataclass(frozen=True)
class WorkerSpec:
    """A worker kind: its name, consumer group, one-line summary and processor factory."""

    name: str
    group: str
    summary: str
    build: Callable[[RuntimeConfig, Retention], Processor]
    # A coroutine run beside the consumer until stop (the alerts worker's tick).
    sidecar: Callable[[str, asyncio.Event, bool], Awaitable[None]] | None = None
    # A worker that does not read the events stream runs this instead of a consumer.
    runner: Callable[[str, asyncio.Event, bool], Awaitable[None]] | None = None


def _cost(config: RuntimeConfig, retention: Retention) -> Processor:
    from llmtap.consumers.cost import CostProcessor

    return CostProcessor(retention, top_n=config.top_n)


def _latency(config: RuntimeConfig, retention: Retention) -> Processor:
    from llmtap.consumers.latency import LatencyProcessor

    return LatencyProcessor(retention)


def _sessions(config: RuntimeConfig, retention: Retention) -> Processor:
    from llmtap.consumers.sessions import SessionsProcessor
    from llmtap.settings import Settings

    return SessionsProcessor(retention, max_history=Settings.from_env().max_history)


def _alerts(config: RuntimeConfig, retention: Retention) -> Processor:
    from llmtap.consumers.alerts.processor import AlertsProcessor, rules_from_env

    return AlertsProcessor(rules_from_env())


async def _alerts_tick(url: str, stop: asyncio.Event, burst: bool) -> None:
    from llmtap.consumers.alerts.evaluator import run_ticks

    await run_ticks(url, stop, once=burst)


def _not_on_events(config: RuntimeConfig, retention: Retention) -> Processor:
    raise ValueError("the notifier reads llmtap:notify, not the events stream: its runner runs it")


async def _notifier(url: str, stop: asyncio.Event, burst: bool) -> None:
    from llmtap.consumers.notify.notifier import run_notifier

    await run_notifier(url, stop, burst=burst)


async def _reports(url: str, stop: asyncio.Event, burst: bool) -> None:
    from llmtap.consumers.reports import run_reports

    await run_reports(url, stop, burst)


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
