"""Fixtures of the read-side tests: seeded synthetic traffic drained by the workers."""

from __future__ import annotations

import pytest
import redis

from tests.read.truth import Truth, seed


@pytest.fixture
def truth(r: redis.Redis, redis_url: str) -> Truth:
    """8k synthetic events (one producer), drained by the cost, latency and sessions workers."""
    return seed(r, redis_url)
