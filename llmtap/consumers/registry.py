"""Every worker kind, by name: the built-in ones here, plugins from the ``llmtap.workers``
entry-point group, each a :class:`llmtap.plugin.Worker` (the one public declaration).

Adding a built-in worker is one entry in :data:`WORKERS` plus its module. A plugin is found by
its entry point's name without importing it (:func:`plugin_names`), and loaded only when it is
run or listed; a plugin that fails to load, is not a ``Worker``, or takes a built-in's name is
reported as one :class:`Problem` and never stops the other workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

from llmtap import keys
from llmtap.consumers.runtime.consumer import Processor
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.plugin import ENTRY_POINT_GROUP, PluginError, Task, Worker, confine

__all__ = ["WORKERS", "Catalogue", "Problem", "Task", "WorkerSpec", "discover", "spec"]

# The built-in entries below use the same public declaration plugins use.
WorkerSpec = Worker


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


@dataclass(frozen=True)
class Problem:
    """A plugin that cannot run, and why (one line, naming it)."""

    name: str
    reason: str

    def line(self) -> str:
        """Return the one line that reports this plugin."""
        return f"plugin {self.name}: {self.reason}"


@dataclass(frozen=True)
class Catalogue:
    """The workers that can run (built-ins first, then plugins) and the plugins that cannot."""

    workers: dict[str, Worker]
    plugins: tuple[str, ...]
    problems: tuple[Problem, ...]


def _entry_points() -> dict[str, list[metadata.EntryPoint]]:
    found: dict[str, list[metadata.EntryPoint]] = {}
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, []).append(point)
    return found


def plugin_names() -> list[str]:
    """Return the names of the installed plugin workers (entry points; nothing is imported)."""
    return sorted(name for name in _entry_points() if name not in WORKERS)


def is_plugin(name: str) -> bool:
    """True when ``name`` is not a built-in worker."""
    return name not in WORKERS


def load_plugin(name: str, points: list[metadata.EntryPoint] | None = None) -> Worker:
    """Import plugin ``name`` and return its confined worker.

    Raises KeyError when no plugin has that name, PluginError (one line, naming it) when it
    clashes with a built-in or another plugin, fails to import, or is not a Worker.
    """
    if name in WORKERS:
        raise PluginError(f"plugin {name}: the name of a built-in worker (built-in kept)")
    points = _entry_points().get(name, []) if points is None else points
    if not points:
        raise KeyError(f"unknown worker {name!r}; known: {', '.join(known())}")
    if len({point.value for point in points}) > 1:
        raise PluginError(f"plugin {name}: published twice ({', '.join(p.value for p in points)})")
    worker = _import(name, points[0])
    if worker.name != name:
        raise PluginError(f"plugin {name}: its Worker is named {worker.name!r}")
    if worker.group in keys.WORKER_GROUPS:
        raise PluginError(f"plugin {name}: group {worker.group!r} belongs to a built-in worker")
    return confine(worker)


def _import(name: str, point: metadata.EntryPoint) -> Worker:
    try:
        found = point.load()
        worker = found if isinstance(found, Worker) or not callable(found) else found()
    except Exception as exc:  # a plugin's import may raise anything: report it, by name
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise PluginError(f"plugin {name}: cannot load {point.value}: {reason}") from None
    if not isinstance(worker, Worker):
        raise PluginError(
            f"plugin {name}: {point.value} is a {type(worker).__name__}, not a llmtap.plugin.Worker"
        )
    return worker


def discover(names: Iterable[str] | None = None) -> Catalogue:
    """Return the built-in workers plus the plugins named (default: every installed one).

    A plugin that cannot load is a Problem in the result, never an exception; an unknown
    name is a Problem too.
    """
    points = _entry_points()
    wanted = sorted(points) if names is None else list(dict.fromkeys(names))
    workers = dict(WORKERS)
    plugins: list[str] = []
    problems: list[Problem] = []
    for name in wanted:
        if name in WORKERS:
            if name in points:
                problems.append(Problem(name, "the name of a built-in worker (built-in kept)"))
            continue
        try:
            workers[name] = load_plugin(name, points.get(name, []))
        except PluginError as exc:
            problems.append(Problem(name, str(exc).removeprefix(f"plugin {name}: ")))
        except KeyError:
            problems.append(Problem(name, "no such worker is installed"))
        else:
            plugins.append(name)
    return Catalogue(workers, tuple(plugins), tuple(problems))


def known() -> list[str]:
    """Return every worker name: the built-ins, then the installed plugins."""
    return [*WORKERS, *plugin_names()]


def spec(name: str) -> Worker:
    """Return the worker called ``name`` (a plugin is loaded now).

    Raises KeyError naming the known ones, and PluginError for a plugin that cannot run.
    """
    try:
        return WORKERS[name]
    except KeyError:
        pass
    return load_plugin(name)
