"""Shared fixtures: one embedded Valkey per test session, flushed before each test, and a day of
synthetic traffic drained by the workers."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, settings

from llmtap.embedded import EmbeddedValkey
from llmtap.testing import Workload
from tests.consumer_helpers import burst

# Property tests judge results, not speed: a loaded shared machine must not fail them on time.
settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared-machine")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the session's Valkey: LLMTAP_TEST_REDIS_URL if set, else an embedded server."""
    configured = os.environ.get("LLMTAP_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    with EmbeddedValkey() as server:
        yield server.url


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A client on a freshly flushed database."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def day_of_traffic(r: redis.Redis, redis_url: str) -> Workload:
    """3k synthetic events on 1 January, drained by the cost, latency and sessions workers."""
    workload = Workload(11, start=1_767_225_600 + 3600, span_s=3600)  # 2026-01-01T01:00Z
    workload.write(r, 3_000)
    burst(redis_url, ["cost", "latency", "sessions"])
    return workload
