"""Fixtures of the MCP tests: yesterday's and the last hour's traffic, drained by the workers."""

from __future__ import annotations

import time

import pytest
import redis

from tests.mcp.helpers import Seeded, seed


@pytest.fixture
def seeded(r: redis.Redis, redis_url: str) -> Seeded:
    """3k synthetic events (yesterday and the last 90 minutes), drained by the workers."""
    return seed(r, redis_url, time.time())
