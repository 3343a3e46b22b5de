"""Every worker kind that reads the events stream, by name: its group and how to build it.

Adding a worker (alerts, sessions, notifier, reports) is one entry here plus its module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmtap import keys
from llmtap.consumers.config import Retention, RuntimeConfig
from llmtap.consumers.runtime import Processor


@dataclass(frozen=True)
class WorkerSpec:
    """A worker kind: its name, consumer group, one-line summary and processor factory."""

    name: str
    group: str
    summary: str
    build: Callable[[RuntimeConfig, Retention], Processor]


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
}


def spec(name: str) -> WorkerSpec:
    """Return the worker called ``name``; raise KeyError naming the known ones."""
    try:
        return WORKERS[name]
    except KeyError:
        raise KeyError(f"unknown worker {name!r}; known: {', '.join(WORKERS)}") from None
