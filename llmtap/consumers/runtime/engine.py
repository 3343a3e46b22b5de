"""The plain redis-py engine: a read loop that drives a :class:`Consumer` until told to stop.

The next XREADGROUP is sent before the entries in hand are decoded, so the server prepares the
reply while this process folds the previous one. Periodic chores (commit on age, heartbeat,
reclaim, dead-consumer removal) run between reads. ``stop`` ends the loop after the batch in
hand (and any read in flight) is folded and committed; ``burst`` ends it once the group is
drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from typing import Final

from redis.exceptions import ClusterDownError, RedisClusterException, ResponseError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from llmtap.consumers.runtime import reclaim
from llmtap.consumers.runtime.consumer import Consumer, Entry, group_missing
from llmtap.retry import RetryPolicy, backoff

log = logging.getLogger(__name__)

# Redis unreachable mid-run: retry forever, every 0.5 s (raise cap_s to back off further).
RECONNECT: Final = RetryPolicy(attempts=0, base_s=0.5, cap_s=0.5, jitter=0.0)
# On a cluster, a failover shows as CLUSTERDOWN / TRYAGAIN replies or a client that cannot
# reach a node for a moment: all retried like a lost connection.
TRANSIENT = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    ClusterDownError,
    TryAgainError,
    RedisClusterException,
)
# redis-py's asyncio connection, whose writer a concurrent disconnect can set to None while a
# command is being sent (see writer_race).
_REDIS_CONNECTION: Final = os.path.join("redis", "asyncio", "connection.py")
_WRITER_CALLS: Final = frozenset({"writelines", "drain"})


def writer_race(exc: BaseException) -> bool:
    """True for redis-py's asyncio teardown race: a command written on a connection that a
    concurrent disconnect just cleared, raising ``AttributeError: 'NoneType' object has no
    attribute 'writelines'`` (or ``'drain'``) from inside redis-py instead of a
    ConnectionError (seen under load with the asyncio RedisCluster; redis-py issues #3546 and
    #4287, where the upstream fix raises ConnectionError). Only that error qualifies: an
    AttributeError raised anywhere else, or about another attribute, is a bug and is not."""
    if not isinstance(exc, AttributeError) or exc.name not in _WRITER_CALLS or exc.obj is not None:
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_filename.endswith(_REDIS_CONNECTION)


def transient(exc: BaseException) -> bool:
    """True for the errors a worker rides through with the reconnect backoff: the
    :data:`TRANSIENT` ones and redis-py's writer race (:func:`writer_race`)."""
    return isinstance(exc, TRANSIENT) or writer_race(exc)


def describe(exc: BaseException) -> str:
    """Return the one-line reason logged for a transient error."""
    if writer_race(exc):
        return f"connection closed under a command (redis-py writer race: {exc})"
    return str(exc)


class Chores:
    """The periodic work of a consumer besides reading: commit on age, heartbeat, reclaim
    (with the relay of control records left behind)."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self._next_beat = 0.0
        self._next_reclaim = 0.0
        self._passes = 0

    async def run(self, *, caught_up: bool) -> None:
        """Do whatever is due; ``caught_up`` commits the unit in hand at once (nothing new)."""
        consumer, now = self.consumer, time.monotonic()
        if caught_up:
            await consumer.flush()  # nothing new to fold meanwhile: commit and wait
        elif consumer.due:
            await consumer.flush_soon()  # commits while the next entries fold
        if now >= self._next_beat:
            self._next_beat = now + consumer.config.heartbeat_ttl_s / 3
            await consumer.heartbeat()
        if now >= self._next_reclaim:
            self._next_reclaim = now + consumer.config.reclaim_interval_s
            await self._reclaim()

    async def _reclaim(self) -> None:
        if await reclaim.reclaim(self.consumer) and self.consumer.due:
            await self.consumer.flush_soon()
        # Control records a consumer committed but did not relay (it died, or Redis failed
        # between the two steps): any replica applies them, once.
        await self.consumer.relay()
        self._passes += 1
        if self._passes % 10 == 1:
            await reclaim.remove_dead_consumers(self.consumer)


async def run_loop(consumer: Consumer, stop: asyncio.Event, *, burst: bool = False) -> None:
    """Consume until ``stop`` is set (or, with ``burst``, until the group is drained).

    Transient connection errors are logged and retried; the unit in hand survives them. A
    group deleted under the consumer (NOGROUP) is recreated at id 0 and consuming goes on.
    """
    chores = Chores(consumer)
    failures, ready, lost = 0, False, False
    while not stop.is_set():
        try:
            if not ready:
                await consumer.setup()
                ready = True
            if lost:
                await consumer.recover_group()
                lost = False
            done = await _serve(consumer, chores, stop, burst=burst)
        except (*TRANSIENT, AttributeError) as exc:
            if not transient(exc):
                raise
            failures += 1
            wait = backoff(failures, RECONNECT, random.random())
            log.warning("redis unavailable (%s); retrying in %.1f s", describe(exc), wait)
            await asyncio.sleep(wait)
            continue
        except ResponseError as exc:
            if not group_missing(exc):
                raise
            lost = True
            continue
        if done:
            break
    await consumer.close()


async def _serve(consumer: Consumer, chores: Chores, stop: asyncio.Event, *, burst: bool) -> bool:
    """Read and fold until stopped or drained; return True when the loop should end."""
    read: asyncio.Task[list[Entry]] | None = await _start_read(consumer, block=False)
    try:
        while read is not None:
            entries = await read
            # Prefetch: the next read is on the wire while these entries are folded.
            read = await _start_read(consumer, block=False) if entries else None
            consumer.absorb(entries)
            await chores.run(caught_up=not entries)
            if stop.is_set():
                if read is not None:
                    consumer.absorb(await read)
                return True
            if read is None:
                if burst and await consumer.drained():
                    return True
                read = await _start_read(consumer, block=True)
        return False
    finally:
        if read is not None and not read.done():
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError, *TRANSIENT):
                try:
                    await read
                except AttributeError as exc:
                    if not writer_race(exc):
                        raise


async def _start_read(consumer: Consumer, *, block: bool) -> asyncio.Task[list[Entry]]:
    block_ms = consumer.config.block_ms if block else None
    task = asyncio.create_task(consumer.read(block_ms))
    await asyncio.sleep(0)  # let the task send its command before we start folding
    return task
