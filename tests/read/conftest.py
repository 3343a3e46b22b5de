"""Fixtures of the read-side tests: seeded synthetic traffic drained by the workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from llmtap.embedded import EmbeddedValkey
from tests.read.truth import Truth, seed


@pytest.fixture
def truth(r: redis.Redis, redis_url: str) -> Truth:
    """8k synthetic events (one producer), drained by the cost, latency and sessions workers."""
    return seed(r, redis_url)


@pytest.fixture
def quiet() -> Iterator[tuple[redis.Redis, str]]:
    """A client and URL on a Valkey of this test's own, for tests that count commands: on the
    session's server, a client another test left open (a profiler polling its settings) would
    add to ``INFO commandstats``."""
    with EmbeddedValkey() as server:
        client = redis.Redis.from_url(server.url)
        yield client, server.url
        client.close()
