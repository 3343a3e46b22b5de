"""Fixtures of the connector tests: traffic of the last hour drained by the real workers, and
the /metrics exposition it gives."""

from __future__ import annotations

import time

import pytest
import redis

from llmtap.connectors.prometheus import MetricsConfig, registry
from llmtap.read.metrics import month_start
from llmtap.testing import Workload
from tests.serve.conftest import seed_traffic

WINDOW_S = 86_400.0  # a quantile window wide enough to hold every seeded event


def seed_start(now: float) -> float:
    """An hour back from ``now``, never before the month started (the counters reset then)."""
    return max(float(month_start(now)), now - 3600 - 120)


@pytest.fixture
def traffic(r: redis.Redis, redis_url: str) -> tuple[Workload, float]:
    """3k synthetic events over the last hour (this month), drained by cost and latency."""
    now = time.time()
    workload = seed_traffic(r, redis_url, 41, 3_000, seed_start(now))
    return workload, now


def exposition(r: redis.Redis, **config: object) -> str:
    """Return one scrape of the collector on ``r`` (the quantile window: a day by default)."""
    from prometheus_client import generate_latest

    settings = {"quantile_window_s": WINDOW_S, **config}
    return generate_latest(registry(r, MetricsConfig(**settings))).decode()  # type: ignore[arg-type]
