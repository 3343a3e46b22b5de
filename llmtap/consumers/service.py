"""Running workers: one until stopped, or several in burst mode until the stream is drained.

This is the Python API behind ``llmtap worker`` and ``llmtap up`` (``run(ctx, ...)`` with the
context they build once) and the one the demo calls: ``await run_burst(url, ["cost",
"latency"])`` builds that context from the environment itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from llmtap.connection import async_client, is_cluster
from llmtap.consumers.registry import Task, spec
from llmtap.consumers.runtime import connect, engine
from llmtap.consumers.runtime.config import Retention, RuntimeConfig
from llmtap.consumers.runtime.consumer import Consumer
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.retry import backoff
from llmtap.settings import SettingsError, redact_url

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


async def run(
    ctx: WorkerContext, name: str, stop: asyncio.Event, *, burst: bool = False
) -> WorkerStats:
    """Run worker ``name`` with ``ctx`` until ``stop`` is set (or drained, with ``burst``).

    Until Redis answers (down, or refusing the password) it waits and retries, logging
    one line every few seconds. Raises KeyError for an unknown worker and redis errors that
    are not transient.
    """
    worker = spec(name)
    if not await connect.wait_for_redis(ctx.url, stop, who=f"worker {name}"):
        return WorkerStats(name, "-", ctx.runtime.engine, 0, 0, 0, 0, 0, 0, 0, 0.0)
    if worker.runner is not None:
        return await _run_other(ctx, name, worker.runner, stop, burst=burst)
    _check_engine(ctx)
    client = async_client(ctx.url)
    # One consumer per shard this replica consumes (LLMTAP_WORKER_SHARDS, default all), each
    # in its shard's group: replicas of a worker share a shard through its consumer group,
    # and a dead replica's entries come back by reclaim to any replica consuming that shard.
    consumers = [
        Consumer(client, lambda: worker.build(ctx), ctx.runtime, shard=shard)
        for shard in ctx.consumed_shards
    ]
    log.info(
        "worker %s (%s engine) consuming shard(s) %s of %d as %s on %s",
        name,
        ctx.runtime.engine,
        ",".join(str(c.shard) for c in consumers),
        ctx.settings.shards,
        consumers[0].name,
        redact_url(ctx.url),
    )
    started = time.monotonic()
    try:
        await _drive_with_sidecar(ctx, consumers, worker.sidecar, stop, burst=burst)
    finally:
        await client.aclose()
    return _stats(name, consumers, ctx.runtime.engine, started)


def _check_engine(ctx: WorkerContext) -> None:
    """The FastStream engine drives one plain-Redis stream: refuse it for shards or a cluster."""
    if ctx.runtime.engine == "faststream" and (ctx.settings.shards > 1 or is_cluster(ctx.url)):
        raise SettingsError(
            "LLMTAP_WORKER_ENGINE=faststream runs one shard on a standalone Redis; "
            "use LLMTAP_WORKER_ENGINE=loop with LLMTAP_SHARDS > 1 or a redis+cluster:// URL"
        )


async def drain(ctx: WorkerContext, names: Sequence[str]) -> dict[str, WorkerStats]:
    """Drain the stream once with each named worker (concurrently); return their stats."""
    stop = asyncio.Event()
    results = await asyncio.gather(*(run(ctx, name, stop, burst=True) for name in names))
    return dict(zip(names, results, strict=True))


async def run_worker(
    url: str,
    name: str,
    stop: asyncio.Event,
    *,
    burst: bool = False,
    config: RuntimeConfig | None = None,
    retention: Retention | None = None,
) -> WorkerStats:
    """Like :func:`run`, with a context built now from the process environment.

    ``config``/``retention`` replace what the environment says. Raises SettingsError for a
    bad variable, KeyError for an unknown worker and redis errors that are not transient.
    """
    ctx = context_from_env(url, config=config, retention=retention)
    return await run(ctx, name, stop, burst=burst)


async def run_burst(
    redis_url: str,
    names: Sequence[str],
    *,
    config: RuntimeConfig | None = None,
    retention: Retention | None = None,
) -> dict[str, WorkerStats]:
    """Like :func:`drain`, with one context built now from the process environment."""
    return await drain(context_from_env(redis_url, config=config, retention=retention), names)


def context_from_env(
    url: str, *, config: RuntimeConfig | None = None, retention: Retention | None = None
) -> WorkerContext:
    """Return the context of this process: ``url`` and a snapshot of ``os.environ``.

    Raises SettingsError naming the first bad variable.
    """
    return WorkerContext.from_environ(url, os.environ, runtime=config, retention=retention)


async def _drive_with_sidecar(
    ctx: WorkerContext,
    consumers: Sequence[Consumer],
    sidecar: Task | None,
    stop: asyncio.Event,
    *,
    burst: bool,
) -> None:
    """Drive every consumer; the sidecar runs beside them, or (burst) once after the drain."""
    beside: asyncio.Future[None] | None = None
    if sidecar is not None and not burst:
        beside = asyncio.ensure_future(sidecar(ctx, stop, False))
    try:
        await asyncio.gather(*(_drive(ctx.url, c, stop, burst=burst) for c in consumers))
        if sidecar is not None and burst:
            await sidecar(ctx, stop, True)  # one pass once the stream is drained
    finally:
        if beside is not None:
            beside.cancel()
            await asyncio.gather(beside, return_exceptions=True)


def _stats(name: str, consumers: Sequence[Consumer], engine: str, started: float) -> WorkerStats:
    def total(attr: str) -> int:
        return sum(getattr(c.totals, attr) for c in consumers)

    return WorkerStats(
        worker=name,
        consumer=",".join(c.name for c in consumers),
        engine=engine,
        processed=total("processed"),
        entries=total("entries"),
        dead_letters=total("dead_letters"),
        duplicates=total("duplicates"),
        conflicts=total("conflicts"),
        commits=total("commits"),
        reclaimed=total("reclaimed"),
        seconds=round(time.monotonic() - started, 3),
    )


async def _run_other(
    ctx: WorkerContext, name: str, runner: Task, stop: asyncio.Event, *, burst: bool
) -> WorkerStats:
    """Run a worker that does not consume the events stream (the notifier, the reports).

    Redis lost mid-run restarts the runner after the engine's reconnect backoff, as a stream
    worker rides through it: the notifier's unacknowledged messages come back through its
    reclaim, and the reports worker's locks keep a restarted schedule from sending twice.
    """
    log.info("worker %s running on %s", name, redact_url(ctx.url))
    started, failures = time.monotonic(), 0
    while True:
        try:
            await runner(ctx, stop, burst)
            break
        except (*engine.TRANSIENT, AttributeError) as exc:
            if not engine.transient(exc):
                raise
            if stop.is_set():
                break
            failures += 1
            wait = backoff(failures, engine.RECONNECT, random.random())
            reason = engine.describe(exc)
            log.warning("worker %s: redis unavailable (%s); retrying in %.1f s", name, reason, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if stop.is_set():
                break
    seconds = round(time.monotonic() - started, 3)
    return WorkerStats(name, "-", ctx.runtime.engine, 0, 0, 0, 0, 0, 0, 0, seconds)


async def _drive(url: str, consumer: Consumer, stop: asyncio.Event, *, burst: bool) -> None:
    if consumer.config.engine == "faststream":
        from llmtap.consumers.runtime import faststream_app

        await faststream_app.run(url, consumer, stop, burst=burst)
    else:
        await engine.run_loop(consumer, stop, burst=burst)
