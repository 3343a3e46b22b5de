"""The closed-bucket cache: cached answers equal uncached ones, closed buckets are read once,
open buckets always, and entries expire."""

from __future__ import annotations

import pytest
import redis

from llmtap import keys
from llmtap.read import cost, dashboard, performance, report
from llmtap.read.bucketcache import BucketCache
from llmtap.testing import Workload
from tests.consumer_helpers import burst
from tests.read.legacy import use_layout_2
from tests.read.oracle import tools as old
from tests.read.truth import WORKERS

START = 1_767_225_600 + 3 * 3600 + 41  # 2026-01-01T03:00:41Z
NOW = START + 28 * 3600 + 777.25


def _seed(r: redis.Redis, url: str) -> float:
    """4k synthetic events over 28 hours, drained by the workers; returns "now"."""
    Workload(9, start=START, span_s=28 * 3600).write(r, 4_000)
    burst(url, WORKERS)
    return NOW


@pytest.fixture
def spread(r: redis.Redis, redis_url: str) -> float:
    """The seeded traffic on the session's server."""
    return _seed(r, redis_url)


def _hgetalls(r: redis.Redis) -> int:
    return int(r.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0))


def test_cached_views_equal_the_oracle_cold_and_warm(
    r: redis.Redis, spread: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a cache, the dashboard, cost, performance and report equal the oracle's answers,
    on the first (filling) and the second (cached) call."""
    cache = BucketCache(clock=lambda: spread, grace_s=0)
    since = spread - 24 * 3600
    passes = [
        (
            dashboard.dashboard(r, 24, spread, cache=cache),
            cost.cost_analysis(r, since, spread, cache=cache),
            performance.performance_analysis(r, since, spread, cache=cache),
            report.export_report(r, since, spread, "json", cache=cache)["content"],
        )
        for _ in range(2)
    ]
    assert cache.hits > 0
    use_layout_2(r, monkeypatch)  # the oracle reads layout 2's bin fields (tests.read.legacy)
    expected = (
        old.get_performance_dashboard(r, 24, spread),
        old.get_cost_analysis_data(r, 24, spread),
        old.get_performance_analysis(r, 24, spread),
        old.export_performance_report(r, 24, spread)["content"],
    )
    for got in passes:
        assert got == expected


def test_warm_cache_reads_only_open_buckets(quiet: tuple[redis.Redis, str]) -> None:
    """Once warm, a read fetches only the hashes of buckets not yet closed (here the last,
    partial minute's cost, usage and latency hashes)."""
    r, url = quiet
    spread = _seed(r, url)
    cache = BucketCache(clock=lambda: spread, grace_s=0)
    since = spread - 24 * 3600
    performance.performance_analysis(r, since, spread, cache=cache)
    minute = keys.bucket("m", spread)
    open_latency = r.scard(keys.latency_index("m", minute))
    r.config_resetstat()
    performance.performance_analysis(r, since, spread, cache=cache)
    assert _hgetalls(r) == 2 + open_latency


def test_entries_expire_after_max_age() -> None:
    """An entry older than max_age_s is a miss; the least recently used goes first; a bucket
    is closed grace_s after its end."""
    now = [1000.0]
    cache = BucketCache(clock=lambda: now[0], max_age_s=10, max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)  # evicts b, the least recently used
    assert cache.get("b") is None and cache.get("c") == 3
    now[0] += 11
    assert cache.get("a") is None
    # closed once the bucket's end is grace_s (300 s by default) in the past
    assert cache.closed("m", int(now[0]) - 360) and not cache.closed("m", int(now[0]) - 359)


def test_bad_cache_settings_are_refused() -> None:
    """A cache that could keep nothing, or forever, is refused at creation."""
    with pytest.raises(ValueError, match="max_age_s"):
        BucketCache(max_age_s=0)
