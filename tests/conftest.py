"""Shared fixtures: one embedded Valkey per test session, flushed before each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from llmtap.embedded import EmbeddedValkey


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
