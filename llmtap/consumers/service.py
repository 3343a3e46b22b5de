"""Running workers: one until stopped, or several in burst mode until the stream is drained.

This is the Python API behind ``llmtap worker`` and ``llmtap up`` and the one the demo calls:
``await run_burst(url, ["cost", "latency"])``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass

import redis.asyncio as aredis

from llmtap.consumers.registry import spec
from llmtap.consumers.runtime import engine
from llmtap.consumers.runtime.config import Retention, RuntimeConfig
from llmtap.consumers.runtime.consumer import Consumer
from llmtap.settings import redact_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerStats:
    """What one consumer committed during a run, and how long the run took."""

    worker: str
    consumer: str
    engine: str
    processed: int
    entries: int
    dead_letters: int
    duplicates: int
    conflicts: int
    commits: int
    reclaimed: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        """Return the stats as a JSON-ready dict."""
        return asdict(self)


async def run_worker(
    url: str,
    name: str,
    stop: asyncio.Event,
    *,
    burst: bool = False,
    config: RuntimeConfig | None = None,
    retention: Retention | None = None,
) -> WorkerStats:
    """Run worker ``name`` on ``url`` until ``stop`` is set (or drained, with ``burst``).

    Raises KeyError for an unknown worker and redis errors that are not transient.
    """
    config = config or RuntimeConfig.from_env()
    retention = retention or Retention.from_env()
    worker = spec(name)
    if worker.runner is not None:
        return await _run_other(url, name, worker.runner, stop, burst=burst, engine=config.engine)
    client = aredis.Redis.from_url(url)
    consumer = Consumer(client, lambda: worker.build(config, retention), config)
    log.info(
        "worker %s (%s engine) consuming as %s on %s",
        name,
        config.engine,
        consumer.name,
        redact_url(url),
    )
    started = time.monotonic()
    sidecar = worker.sidecar
    beside: asyncio.Future[None] | None = None
    if sidecar is not None and not burst:
        beside = asyncio.ensure_future(sidecar(url, stop, False))
    try:
        await _drive(url, consumer, stop, burst=burst)
        if sidecar is not None and burst:
            await sidecar(url, stop, True)  # one pass once the stream is drained
    finally:
        if beside is not None:
            beside.cancel()
            await asyncio.gather(beside, return_exceptions=True)
        await client.aclose()
    totals = consumer.totals
    return WorkerStats(
        worker=name,
        consumer=consumer.name,
        engine=config.engine,
        processed=totals.processed,
        entries=totals.entries,
        dead_letters=totals.dead_letters,
        duplicates=totals.duplicates,
        conflicts=totals.conflicts,
        commits=totals.commits,
        reclaimed=totals.reclaimed,
        seconds=round(time.monotonic() - started, 3),
    )


async def run_burst(
    redis_url: str,
    names: Sequence[str],
    *,
    config: RuntimeConfig | None = None,
    retention: Retention | None = None,
) -> dict[str, WorkerStats]:
    """Drain the stream once with each named worker (concurrently); return their stats."""
    stop = asyncio.Event()
    runs = [
        run_worker(redis_url, name, stop, burst=True, config=config, retention=retention)
        for name in names
    ]
    results = await asyncio.gather(*runs)
    return dict(zip(names, results, strict=True))


async def _run_other(
    url: str,
    name: str,
    runner: Callable[[str, asyncio.Event, bool], Awaitable[None]],
    stop: asyncio.Event,
    *,
    burst: bool,
    engine: str,
) -> WorkerStats:
    """Run a worker that does not consume the events stream (the notifier)."""
    log.info("worker %s running on %s", name, redact_url(url))
    started = time.monotonic()
    await runner(url, stop, burst)
    seconds = round(time.monotonic() - started, 3)
    return WorkerStats(name, "-", engine, 0, 0, 0, 0, 0, 0, 0, seconds)


async def _drive(url: str, consumer: Consumer, stop: asyncio.Event, *, burst: bool) -> None:
    if consumer.config.engine == "faststream":
        from llmtap.consumers.runtime import faststream_app

        await faststream_app.run(url, consumer, stop, burst=burst)
    else:
        await engine.run_loop(consumer, stop, burst=burst)
