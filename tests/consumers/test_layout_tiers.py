"""Layout 4's ten-minute and quarter-day buckets, and an upgrade from layout 3: the layout record
says since when every granularity is written, and reads take the new buckets only from then on,
so ranges written before the upgrade (minutes, hours and days only) read as they did."""

from __future__ import annotations

import time

import redis

from llmtap import keys
from llmtap.read import query, shards
from llmtap.testing import Workload
from tests.consumer_helpers import burst

DAY0 = 1_767_225_600  # 2026-01-01T00:00Z
START = DAY0 + 5 * 3600 + 17  # traffic over 14 h, across quarter days, off the minute
SPAN = 14 * 3600
NOW = START + SPAN + 1


def _layout(r: redis.Redis) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(keys.LAYOUT).items()}


def test_workers_write_every_granularity_and_record_them_complete_from_the_start(
    r: redis.Redis, redis_url: str
) -> None:
    """On a fresh database the workers write ten-minute and quarter-day buckets whose totals
    equal the minutes and hours they span, and record ``tiers_since`` 0."""
    workload = Workload(3, start=START, span_s=SPAN)
    workload.write(r, 3_000)
    burst(redis_url)
    assert _layout(r) == {"version": str(keys.LAYOUT_VERSION), "shards": "1", "tiers_since": "0"}
    assert shards.tiers_since(r) == 0.0
    quarter = keys.bucket_start("q", START + 3600)
    for g, size, part, n in (("q", 6 * 3600, "h", 6), ("t", 600, "m", 10)):
        spanned = [keys.bucket(part, quarter + i * size // n) for i in range(n)]
        tier = r.hgetall(keys.usage(g, keys.bucket(g, quarter)))
        summed: dict[bytes, int] = {}
        for name in spanned:
            for field, value in r.hgetall(keys.usage(part, name)).items():
                summed[field] = summed.get(field, 0) + int(value)
        assert tier and {f: int(v) for f, v in tier.items()} == summed, g
        assert r.smembers(keys.latency_index(g, keys.bucket(g, quarter)))
        assert r.ttl(keys.usage(g, keys.bucket(g, quarter))) > 0


def test_an_upgrade_from_layout_3_reads_old_ranges_as_before(
    r: redis.Redis, redis_url: str
) -> None:
    """Data a layout-3 deployment wrote has no ten-minute or quarter-day buckets. The first
    layout-4 worker records the upgrade's time as ``tiers_since``; until then, and for every
    range before it, reads take minutes, hours and days only, and count everything."""
    workload = Workload(4, start=START, span_s=SPAN)
    workload.write(r, 3_000)
    burst(redis_url)
    for g in ("t", "q"):  # what layout-3 workers left: no such buckets, a version-3 record
        for name in r.scan_iter(match=f"{keys.PREFIX}:*:{g}:*", count=1000):
            r.delete(name)
    r.hset(keys.LAYOUT, mapping={"version": 3, "shards": 1})
    r.hdel(keys.LAYOUT, keys.LAYOUT_TIERS_FIELD)
    truth = workload.truth
    assert shards.tiers_since(r) == float("inf")
    assert query.total(r, START, NOW)["calls"] == truth.calls

    before = time.time()
    Workload(5, start=NOW + 3600, span_s=60).write(r, 10)  # the new workers' first traffic
    burst(redis_url)
    since = shards.tiers_since(r)
    assert before - 2 <= since <= time.time() + 2  # the server's clock at the upgrade
    assert _layout(r)["version"] == str(keys.LAYOUT_VERSION)
    total = query.total(r, START, NOW)
    assert total["calls"] == truth.calls and total["cost_nanousd"] == truth.cost_nanousd
    rows = query.latency_percentiles(r, START, NOW, by="all")
    assert rows and rows[0]["count"] == truth.call_events

    burst(redis_url)  # a later start keeps the recorded time
    assert shards.tiers_since(r) == since
