"""Shared fixtures: one embedded Valkey per test session, flushed before each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, settings

from llmtap.embedded import EmbeddedValkey

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
