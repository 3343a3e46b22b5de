"""The nine tool functions bound to one client: the cached answers of ProfilingTools."""

from __future__ import annotations

import math

import redis

from llmtap.read import tools
from llmtap.settings import Settings
from tests.read.truth import NOW, Truth


def test_cached_answers_last_the_ttl(r: redis.Redis, truth: Truth) -> None:
    """A second ask within the TTL is served from the cache; after it, recomputed."""
    clock = [NOW]
    cached = tools.ProfilingTools(r, settings=Settings(), clock=lambda: clock[0])
    first = cached.get_cost_analysis_data(24)
    r.flushdb()
    assert cached.get_cost_analysis_data(24) == first
    clock[0] += 61
    assert cached.get_cost_analysis_data(24)["total_cost_nanousd"] == 0
    stats = cached.get_performance_dashboard(24)["cache_stats"]
    assert (stats["hits"], stats["misses"]) == (1, 3)
    assert math.isclose(stats["ttl_s"], 60.0)
