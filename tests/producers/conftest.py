"""Fixtures of the integration tests: a fake API server and a profiler that keeps every call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from llmtap.producers.profiler import Profiler
from llmtap.settings import Settings
from tests.producers.fakes.server import FakeServer, fake_server


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """A fresh fake API server on loopback."""
    with fake_server() as fake:
        yield fake


@pytest.fixture
def profiler(redis_url: str, r: redis.Redis) -> Iterator[Profiler]:
    """A profiler on the test Valkey that keeps every call as an event."""
    settings = Settings(sampling_rate=1.0, rollup_interval_s=0.2, settings_poll_s=0.05)
    p = Profiler(settings, redis_url=redis_url).start()
    yield p
    p.close(timeout=2.0)
