"""LLMTAP_WAIT_REPLICAS: a producer write counts as sent only once enough replicas have it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from llmtap import events, keys
from llmtap.embedded import EmbeddedValkey
from llmtap.producers.profiler import Profiler
from llmtap.settings import Settings


@pytest.fixture
def lone_server() -> Iterator[str]:
    """A Valkey with no replica at all: no WAIT can be confirmed."""
    with EmbeddedValkey() as server:
        yield server.url


def rollup_copies(url: str) -> Counter[tuple[str, int]]:
    """How many times each (producer, seq) rollup is on the stream."""
    client = redis.Redis.from_url(url)
    copies: Counter[tuple[str, int]] = Counter()
    for _, fields in client.xrange(keys.EVENTS):
        for item in events.decode_entry(fields):
            if isinstance(item, events.RollupEvent):
                copies[item.producer_id, item.seq] += 1
    client.close()
    return copies


def run_calls(url: str, wait_replicas: int, seconds: float) -> Profiler:
    settings = Settings(sampling_rate=1.0, rollup_interval_s=0.1, wait_replicas=wait_replicas)
    profiler = Profiler(settings, redis_url=url).start()

    @profiler.profile(backend="openai")
    def ask() -> dict[str, Any]:
        return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 10, "completion_tokens": 2}}

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ask()
        time.sleep(0.01)
    return profiler


def test_an_unconfirmed_rollup_is_retried_with_its_seq(lone_server: str) -> None:
    """With one replica required and none present, the first rollup is written, not confirmed,
    and written again with the same seq (the workers count it once)."""
    profiler = run_calls(lone_server, 1, 3.0)
    copies = rollup_copies(lone_server)
    profiler.close(timeout=0.5)
    assert copies and max(copies.values()) >= 2
    assert len(copies) == 1  # the window stays open until the pending rollup is confirmed


def test_without_wait_each_rollup_is_written_once(lone_server: str) -> None:
    """With LLMTAP_WAIT_REPLICAS=0 (the default) each rollup is on the stream once."""
    profiler = run_calls(lone_server, 0, 1.0)
    assert profiler.flush()
    profiler.close(timeout=2.0)
    copies = rollup_copies(lone_server)
    assert len(copies) >= 2 and set(copies.values()) == {1}
