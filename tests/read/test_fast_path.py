"""The fast read path gives the same answers as the read side it replaced (``tests.read.oracle``)
on the same seeded data: counts and costs exactly, sketch quantiles and every float identically.

The oracle merges latency hashes in sorted member order (the original's set order varied with
the hash seed), the order the fast path merges in, so even the float sums must be equal. It reads
the sketch bins as hash fields (layout 2): each test takes the fast path's answers first, then
copies the packed sketches' bins into the hashes (``tests.read.legacy``) for the oracle.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
import redis

from llmtap import aggregates, keys
from llmtap.read import query, tools
from llmtap.testing import Workload
from tests.consumer_helpers import burst
from tests.read.legacy import use_layout_2, use_layout_4_cover
from tests.read.oracle import query as old_query
from tests.read.oracle import tools as old
from tests.read.truth import NOW, WORKERS, Truth

DAY0 = 1_767_225_600  # 2026-01-01T00:00Z
# Traffic over 30 hours across a day boundary, so ranges are covered by day, hour and minute
# buckets; "now" is off the minute so the edges are partial.
SPREAD_START = DAY0 + 5 * 3600 + 17
SPREAD_NOW = SPREAD_START + 30 * 3600 + 1234.5
FORMATS = ("json", "md", "csv", "html")

Tool = Callable[[redis.Redis, float, float], dict[str, Any]]
PAIRS: dict[str, tuple[Tool, Tool]] = {
    "dashboard": (
        lambda r, h, now: tools.get_performance_dashboard(r, h, False, now=now),
        old.get_performance_dashboard,
    ),
    "cost": (lambda r, h, now: tools.get_cost_analysis_data(r, h, now=now),
             old.get_cost_analysis_data),
    "performance": (lambda r, h, now: tools.get_performance_analysis(r, h, now=now),
                    old.get_performance_analysis),
    "insights": (lambda r, h, now: tools.get_optimization_insights(r, h, now=now),
                 old.get_optimization_insights),
    "report": (lambda r, h, now: tools.export_performance_report(r, h, now=now),
               old.export_performance_report),
}  # fmt: skip


def _seed(r: redis.Redis, url: str) -> float:
    """6k synthetic events over 30 hours, drained by the workers; returns "now"."""
    Workload(5, start=SPREAD_START, span_s=30 * 3600).write(r, 6_000)
    burst(url, WORKERS)
    return SPREAD_NOW


@pytest.fixture
def spread(r: redis.Redis, redis_url: str) -> float:
    """The seeded traffic on the session's server."""
    return _seed(r, redis_url)


@pytest.mark.parametrize("view", sorted(PAIRS))
def test_views_equal_the_oracle_on_seeded_traffic(
    r: redis.Redis, truth: Truth, view: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each tool's answer over 24 h equals the old read side's, float for float."""
    fast, slow = PAIRS[view]
    new = fast(r, 24, NOW)
    use_layout_2(r, monkeypatch)
    assert new == slow(r, 24, NOW)


def test_views_equal_the_oracle_over_day_hour_and_minute_buckets(
    r: redis.Redis, spread: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over traffic spread across days, every view equals the oracle's for short and long ranges
    (ranges covered by minute, hour and day buckets)."""
    cases = [(view, hours) for hours in (0.5, 7, 24, 168) for view in sorted(PAIRS)]
    new = {case: PAIRS[case[0]][0](r, case[1], spread) for case in cases}
    use_layout_2(r, monkeypatch)
    for view, hours in cases:
        assert new[view, hours] == PAIRS[view][1](r, hours, spread), (view, hours)


def test_report_renderings_equal_the_oracle(
    r: redis.Redis, truth: Truth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rendered report (every format) is byte for byte the old one."""
    new = {f: tools.export_performance_report(r, 24, f, now=NOW)["content"] for f in FORMATS}
    use_layout_2(r, monkeypatch)
    for fmt in FORMATS:
        assert new[fmt] == old.export_performance_report(r, 24, NOW, fmt)["content"], fmt


def test_status_equals_the_oracle(r: redis.Redis, truth: Truth) -> None:
    """The profiling status (producers, statistics, pipeline health) is unchanged."""
    assert tools.get_profiling_status(r) == old.get_profiling_status(r)


def test_latency_percentiles_equal_the_oracle(
    r: redis.Redis, spread: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every grouping and timing, at odd quantiles, equals the per-dict merge."""
    qs = (0.0, 0.001, 0.5, 0.9, 0.999, 1.0)
    since = spread - 20 * 3600
    cases = [(by, t) for by in query.LATENCY_GROUPINGS for t in aggregates.TIMINGS]
    new = {(by, t): query.latency_percentiles(r, since, spread, qs, t, by) for by, t in cases}
    use_layout_2(r, monkeypatch)
    for by, timing in cases:
        assert new[by, timing] == old_query.latency_percentiles(r, since, spread, qs, timing, by)
        assert new[by, timing], (by, timing)  # the seeded traffic has events of every timing


def test_cost_by_equals_the_oracle(
    r: redis.Redis, spread: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cost and usage rows per dimension are exact and in the same order."""
    use_layout_4_cover(monkeypatch)
    since = spread - 26 * 3600
    for dimension in ("total", "backend", "model", "tenant", "session"):
        new = query.cost_by(r, dimension, since, spread)
        assert list(new.items()) == list(old_query.cost_by(r, dimension, since, spread).items())


def test_empty_database_equals_the_oracle(r: redis.Redis) -> None:
    """With no aggregates at all, every view still answers as before."""
    for view, (fast, slow) in sorted(PAIRS.items()):
        assert fast(r, 24, NOW) == slow(r, 24, NOW), view


def test_performance_reads_each_latency_hash_once(quiet: tuple[redis.Redis, str]) -> None:
    """The performance analysis (seven latency views) fetches each latency hash once."""
    r, url = quiet
    spread = _seed(r, url)
    since = spread - 24 * 3600
    buckets = query.cover(since, spread)
    hashes = sum(r.scard(keys.latency_index(g, keys.bucket(g, start))) for g, start in buckets)
    r.config_resetstat()
    tools.get_performance_analysis(r, 24, now=spread)
    calls = r.info("commandstats")["cmdstat_hgetall"]["calls"]
    assert calls == hashes + 2 * len(buckets)  # latency hashes, then cost and usage hashes


def test_ten_minutes_and_quarter_days_hold_what_they_span(r: redis.Redis, spread: float) -> None:
    """Read over ten-minute and quarter-day buckets, every view answers what the minutes and
    hours they span give (what a deployment upgraded from layout 3 reads before its
    ``tiers_since``): counts and costs exactly, and floats up to the last bits that adding the
    same values in another grouping changes."""
    cases = [(view, hours) for hours in (0.5, 7, 24, 168) for view in sorted(PAIRS)]
    tiered = {case: PAIRS[case[0]][0](r, case[1], spread) for case in cases}
    assert r.hget(keys.LAYOUT, keys.LAYOUT_TIERS_FIELD) == b"0"  # workers of layout 4 only
    covered = {g for g, _ in query.cover(spread - 24 * 3600, spread)}
    assert {"t", "q"} <= covered
    r.hset(keys.LAYOUT, keys.LAYOUT_TIERS_FIELD, "inf")
    try:
        for view, hours in cases:
            base = PAIRS[view][0](r, hours, spread)
            assert_same(tiered[view, hours], base, f"{view} {hours} h")
    finally:
        r.hset(keys.LAYOUT, keys.LAYOUT_TIERS_FIELD, "0")


def assert_same(got: Any, expected: Any, where: str) -> None:
    """Assert ``got`` equals ``expected`` exactly, except floats (to 1e-12 relative) and the
    order of a mapping's keys (first seen in another bucket); a report's JSON content is
    compared parsed."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(expected), where
        for key, value in expected.items():
            if key == "content" and expected.get("format") == "json":
                assert_same(json.loads(got[key]), json.loads(value), f"{where} {key}")
            else:
                assert_same(got[key], value, f"{where} {key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_same(a, b, f"{where} [{i}]")
    elif isinstance(expected, float) and not isinstance(got, bool):
        assert isinstance(got, float | int), where
        assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-12), (where, got, expected)
    else:
        assert got == expected and type(got) is type(expected), (where, got, expected)
