"""redis-py's asyncio writer race (AttributeError on a connection a concurrent disconnect
cleared) is ridden through like a lost connection, and only that AttributeError is.

The race itself could not be provoked on demand (it needs a disconnect landing between
redis-py's connection check and its write, seen under load with the asyncio RedisCluster), so
these tests take the genuine error from redis-py's own write path on a connection whose writer
is gone, and drive a real consumer on the session's Valkey that meets it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from redis.asyncio.connection import Connection

from llmtap.consumers.cost import CostProcessor
from llmtap.consumers.runtime import engine
from llmtap.consumers.runtime.consumer import Consumer, Entry
from llmtap.testing import Workload
from tests.consumer_helpers import config, day_totals, truth_totals


def redis_writer_error() -> AttributeError:
    """The AttributeError redis-py raises when it writes on a connection without a writer."""

    async def write() -> None:
        await Connection()._send_packed_command([b"PING\r\n"])

    try:
        asyncio.run(write())
    except AttributeError as exc:
        return exc
    raise AssertionError("redis-py wrote without a writer")


def own_attribute_error() -> AttributeError:
    """An AttributeError about the same attribute, raised outside redis-py."""
    writer: Any = None
    try:
        writer.writelines([b"x"])
    except AttributeError as exc:
        return exc
    raise AssertionError("unreachable")


def other_attribute_error() -> AttributeError:
    """An AttributeError about another attribute of a cleared connection."""
    reader: Any = None
    try:
        reader.feed(b"x")
    except AttributeError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (redis_writer_error, True),
        (own_attribute_error, False),
        (other_attribute_error, False),
        (lambda: redis.ConnectionError("gone"), True),
        (lambda: ValueError("writelines"), False),
    ],
)
def test_only_redis_writer_race_counts_as_transient(
    make: Callable[[], BaseException], expected: bool
) -> None:
    """The writer race from redis-py's asyncio connection is transient; the same error from
    our own code, an AttributeError about another attribute, or another error type is not."""
    exc = make()
    assert engine.transient(exc) is expected
    assert engine.writer_race(exc) is (expected and isinstance(exc, AttributeError))


class RaceOnce(Consumer):
    """A consumer whose next read meets ``error`` once (then reads for real)."""

    error: BaseException | None = None

    async def read(self, block_ms: int | None) -> list[Entry]:
        error, self.error = self.error, None
        if error is not None:
            raise error
        return await super().read(block_ms)


def drive(url: str, error: BaseException) -> RaceOnce:
    async def go() -> RaceOnce:
        client = aredis.Redis.from_url(url)
        consumer = RaceOnce(client, CostProcessor, config())
        consumer.error = error
        try:
            await asyncio.wait_for(engine.run_loop(consumer, asyncio.Event(), burst=True), 60)
        finally:
            await client.aclose()
        return consumer

    return asyncio.run(go())


def test_a_worker_rides_through_the_writer_race_with_one_log_line(
    r: redis.Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A read that meets the writer race is retried after the backoff: one warning line,
    no traceback, and the backlog counts exactly."""
    workload = Workload(21)
    workload.write(r, 500)
    with caplog.at_level(logging.WARNING, logger=engine.__name__):
        drive(redis_url, redis_writer_error())
    (line,) = [rec for rec in caplog.records if rec.name == engine.__name__]
    assert "writer race" in line.getMessage() and line.exc_info is None
    assert day_totals(r) == truth_totals(workload.truth)


def test_any_other_attribute_error_stops_the_worker(r: redis.Redis, redis_url: str) -> None:
    """An AttributeError that is not redis-py's writer race is a bug: it propagates."""
    Workload(22).write(r, 10)
    with pytest.raises(AttributeError):
        drive(redis_url, own_attribute_error())
