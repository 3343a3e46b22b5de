"""Running workers: one until stopped, or several in burst mode until the stream is drained.

This is the Python API behind ``llmtap worker`` and ``llmtap up`` and the one the demo calls:
``await run_burst(url, ["cost", "latency"])``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import redis.asyncio as aredis

from llmtap.consumers import engine
from llmtap.consumers.config import Retention, RuntimeConfig
from llmtap.consumers.registry import spec
from llmtap.consumers.runtime import Consumer
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
    try:
        await _drive(url, consumer, stop, burst=burst)
    finally:
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


async def _drive(url: str, consumer: Consumer, stop: asyncio.Event, *, burst: bool) -> None:
    if consumer.config.engine == "faststream":
        from llmtap.consumers import faststream_app

        await faststream_app.run(url, consumer, stop, burst=burst)
    else:
        await engine.run_loop(consumer, stop, burst=burst)
