"""The FastStream engine: a RedisBroker stream subscriber that feeds a :class:`Consumer`.

On Redis/Valkey Cluster (a ``redis+cluster://`` URL) the broker is FastStream's
``RedisClusterBroker``; a worker drives one engine per shard it consumes, each reading its
shard's stream (one slot) in its shard's group.

FastStream reads (XREADGROUP in batches, ``max_records`` = ``read_count``) and calls the handler
with the raw entries: a one-argument parser and decoder pass them through untouched (its
default batch parser would try to decode the binary msgpack values). Acknowledgement is
``AckPolicy.MANUAL`` and FastStream never acknowledges: the consumer's Lua commit does. Its known
gaps are closed here: the group is created at id ``0`` with MKSTREAM before the broker starts
(FastStream then gets BUSYGROUP and reads with ``>``; its ``last_id`` is never used), and
reclaim, commits on age, heartbeat and dead-consumer removal run in a chores task beside it.

``build_app(name)`` returns a :class:`faststream.FastStream` app (lifespan hooks, AsyncAPI docs,
``faststream run ... --workers N``); :func:`run` drives the same subscriber under llmtap's own
stop event and burst mode, and restarts it when FastStream stops it on NOGROUP (a stream or
group deleted under it; a ``faststream run`` app exits then, and recreates the group at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from faststream import FastStream
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.redis import RedisBroker, RedisClusterBroker, StreamSub
from faststream.specification import AsyncAPI

from llmtap.connection import is_cluster, plain_url
from llmtap.consumers.runtime.consumer import Consumer, Entry
from llmtap.consumers.runtime.engine import Chores

log = logging.getLogger(__name__)

CHORES_TICK_S = 0.05


def parse(message: Mapping[str, Any]) -> StreamMessage[Any]:
    """Wrap a raw batch of stream entries without decoding anything (one-argument parser)."""
    return StreamMessage(
        raw_message=message,
        body=b"",
        headers={},
        content_type=None,
        message_id="",
        correlation_id="",
    )


def decode(message: StreamMessage[Any]) -> list[Entry]:
    """Return the (id, fields) pairs of a parsed batch (one-argument decoder)."""
    raw = message.raw_message
    return list(zip(raw["message_ids"], raw["data"], strict=True))


class FastStreamEngine:
    """A broker whose one subscriber feeds ``consumer``; chores run in a task beside it.

    ``close_client``: close the consumer's Redis client at shutdown (when the app owns it).
    """

    def __init__(self, url: str, consumer: Consumer, *, close_client: bool = False) -> None:
        self.consumer = consumer
        self._close_client = close_client
        config = consumer.config
        # A redis+cluster:// URL: FastStream's cluster broker, on the URL it wraps.
        broker, url = (
            (RedisClusterBroker, plain_url(url)) if is_cluster(url) else (RedisBroker, url)
        )
        self.broker = broker(
            url,
            apply_types=False,
            logger=log,
            log_level=logging.DEBUG,  # one line per batch otherwise
            graceful_timeout=30.0,
        )
        stream = StreamSub(
            consumer.stream,
            group=consumer.group,
            consumer=consumer.name,
            batch=True,
            max_records=config.read_count,
            polling_interval=min(config.block_ms, 100),
        )
        self._poll_s = min(config.block_ms, 100) / 1000
        self.subscriber = subscriber = self.broker.subscriber(
            stream=stream,
            parser=parse,
            decoder=decode,
            ack_policy=AckPolicy.MANUAL,
            title=f"{consumer.stream}:{consumer.group}",
            description=(
                f"Consumer group {consumer.group!r}: entries carry one msgpack event map in "
                "field 'e' or an array of them in field 'b' (see llmtap.events)."
            ),
        )
        subscriber(self.handle)
        self._chores: asyncio.Task[None] | None = None
        self._folding: asyncio.Task[None] | None = None
        self._stopping = False

    async def handle(self, entries: list[Entry]) -> None:
        """Hand a batch to the folding task and return, so FastStream sends its next read.

        The previous batch is folded first (one batch in hand at most: backpressure).
        """
        try:
            await self.folded()  # an error of the previous batch reaches FastStream's log...
        finally:
            self._folding = asyncio.create_task(self._fold(entries))  # ...this batch still folds

    async def folded(self) -> None:
        """Wait until the batch handed over last is folded (re-raising its error, if any)."""
        task, self._folding = self._folding, None
        if task is not None:
            await task

    async def _fold(self, entries: list[Entry]) -> None:
        self.consumer.absorb(entries)
        if self.consumer.due:
            await self.consumer.flush_soon()

    async def revive(self) -> bool:
        """Recreate the group and restart the subscriber if FastStream stopped it; return True
        if it did. FastStream stops a subscriber for good on NOGROUP (its stream or group was
        deleted), so under :func:`run` the group is recreated at 0 (logged, counted) instead."""
        # Only once FastStream's own stop is complete: it cancels and forgets every task the
        # subscriber holds, so a read task started before that would be cancelled with them.
        if self.subscriber.running or getattr(self.subscriber, "tasks", None):
            return False
        await self.consumer.recover_group()
        await self.subscriber.start()
        return True

    async def on_startup(self) -> None:
        """Create the group at id 0 before FastStream tries to create it at ``$``."""
        await self.consumer.setup()

    async def after_startup(self) -> None:
        """Start the chores task."""
        self._chores = asyncio.create_task(self._run_chores())

    async def after_shutdown(self) -> None:
        """Stop the chores, then commit what the last handler folded and leave the group."""
        if self._chores is not None:
            self._stopping = True  # ends the loop even if a client library swallows the cancel
            self._chores.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._chores
        await self.folded()
        await self.consumer.close()
        if self._close_client:
            await self.consumer.client.aclose()

    def app(self) -> FastStream:
        """Return a FastStream app running this subscriber with llmtap's lifespan hooks."""
        return FastStream(
            self.broker,
            specification=AsyncAPI(title=f"llmtap {self.consumer.group} worker"),
            on_startup=[self.on_startup],
            after_startup=[self.after_startup],
            after_shutdown=[self.after_shutdown],
        )

    async def _run_chores(self) -> None:
        chores = Chores(self.consumer)
        while not self._stopping:
            await asyncio.sleep(CHORES_TICK_S)
            # No batch for two polls: caught up, so commit now rather than when due by age.
            quiet = time.monotonic() - self.consumer.last_absorb > 2 * self._poll_s
            try:
                await chores.run(caught_up=quiet and bool(self.consumer.unit))
            except Exception as exc:  # keep the chores alive beside the subscriber; retry
                log.warning("worker chores failed: %s", exc)


async def run(url: str, consumer: Consumer, stop: asyncio.Event, *, burst: bool = False) -> None:
    """Run ``consumer`` under FastStream until ``stop`` is set (or, with ``burst``, drained)."""
    engine = FastStreamEngine(url, consumer)
    await engine.on_startup()
    await engine.broker.start()
    await engine.after_startup()
    try:
        while not stop.is_set():
            await engine.revive()
            if burst and await consumer.drained():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHORES_TICK_S * 2)
    finally:
        await engine.broker.stop()
        await engine.after_shutdown()


def create_app() -> FastStream:
    """App factory for FastStream's CLI, configured once from the environment at start.

    ``LLMTAP_WORKER`` names the worker (default ``cost``); ``LLMTAP_REDIS_URL`` the server::

        faststream run llmtap.consumers.runtime.faststream_app:create_app --factory --workers 4
        faststream docs gen llmtap.consumers.runtime.faststream_app:create_app --factory

    Raises SettingsError when LLMTAP_REDIS_URL is unset or a variable is bad, and KeyError for
    an unknown worker.
    """
    import os

    import redis.asyncio as aredis

    from llmtap.consumers.registry import spec
    from llmtap.consumers.runtime.context import WorkerContext
    from llmtap.settings import Settings, SettingsError

    environ = dict(os.environ)  # the one read of the environment in this process
    settings = Settings.from_env(environ)
    if settings.redis_url is None:
        raise SettingsError("LLMTAP_REDIS_URL is unset; the FastStream app needs a Redis URL")
    ctx = WorkerContext.from_environ(settings.redis_url, environ, settings=settings)
    worker = spec(environ.get("LLMTAP_WORKER", "cost"))
    client = aredis.Redis.from_url(ctx.url)
    consumer = Consumer(client, lambda: worker.build(ctx), ctx.runtime)
    return FastStreamEngine(ctx.url, consumer, close_client=True).app()
