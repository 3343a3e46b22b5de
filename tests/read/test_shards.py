"""Merging a key's copies on several shards (``llmtap.read.shards``), on one server whose layout
record says three shards: sums, extremes, sorted-set order, trims, scans and group states."""

from __future__ import annotations

import redis

from llmtap import keys
from llmtap.read import shards

SHARDS = 3


def three_shards(r: redis.Redis) -> None:
    """Record the layout the workers write when they run three shards."""
    r.hset(keys.LAYOUT, mapping={keys.LAYOUT_SHARDS_FIELD: SHARDS, keys.LAYOUT_VERSION_FIELD: 2})


def test_one_shard_reads_what_one_server_holds(r: redis.Redis) -> None:
    """Without a layout record there is one shard, and nothing on other shards is read."""
    r.hset(keys.session("s"), "events", 2)
    r.hset(keys.on_shard(keys.session("s"), 1), "events", 5)
    assert shards.shard_count(r) == 1
    assert shards.hgetall_many(r, [keys.session("s")]) == [{b"events": b"2"}]


def test_a_session_summary_sums_counts_and_keeps_the_extreme_times(r: redis.Redis) -> None:
    """Counts and latency sums add; first_seen is the earliest, last_seen the latest."""
    three_shards(r)
    name = keys.session("s")
    r.hset(name, mapping={"events": 2, "first_seen": 100.5, "last_seen": 200.0, "latency_sum": 1.5})
    r.hset(keys.on_shard(name, 2), mapping={"events": 3, "first_seen": 90, "last_seen": 150.25})
    (got,) = shards.hgetall_many(r, [name])
    assert {k.decode(): v.decode() for k, v in got.items()} == {  # type: ignore[union-attr]
        "events": "5", "first_seen": "90", "last_seen": "200.0", "latency_sum": "1.5",
    }  # fmt: skip


def test_hmget_merges_each_field_and_leaves_missing_ones_none(r: redis.Redis) -> None:
    """A field on some shards is their merge; a field on none is None."""
    three_shards(r)
    name = keys.cost("d", "20260101")
    r.hset(name, "total", 7)
    r.hset(keys.on_shard(name, 1), "total", 5)
    assert shards.hmget_many(r, [name], ["total", "model:x"]) == [[b"12", None]]


def test_sorted_sets_unite_in_redis_order_and_keep_the_newest(r: redis.Redis) -> None:
    """Members come by score, ties by member bytes as Redis orders them; ``newest`` keeps the
    highest-scored of all shards."""
    three_shards(r)
    name = keys.session_timeline("s")
    r.zadd(name, {"b": 1.0, "e": 5.0})
    r.zadd(keys.on_shard(name, 1), {"a": 1.0, "d": 4.0})
    r.zadd(keys.on_shard(name, 2), {"c": 3.0, "f": 6.0})
    assert shards.zrange_many(r, [name]) == [[b"a", b"b", b"c", b"d", b"e", b"f"]]
    assert shards.zrange_many(r, [name], newest=3) == [[b"d", b"e", b"f"]]


def test_scan_finds_keys_on_every_shard(r: redis.Redis) -> None:
    """A shard-0 pattern finds the matching keys of every shard, and only of the shards in use."""
    three_shards(r)
    for shard in range(SHARDS + 1):
        r.hset(keys.on_shard(keys.producer(f"p{shard}"), shard), "seq", 1)
    assert shards.scan_names(r, keys.producer("*")) == [
        (k, keys.on_shard(keys.producer(f"p{k}"), k)) for k in range(SHARDS)
    ]


def test_group_states_add_up_and_an_unknown_lag_stays_unknown(r: redis.Redis) -> None:
    """Lag and pending add over the shards' streams; a missing stream adds nothing; the group
    exists if it exists on any shard."""
    three_shards(r)
    for shard in (0, 1):
        stream = keys.events_stream(shard)
        r.xadd(stream, {"e": "x"})
        r.xadd(stream, {"e": "y"})
        r.xgroup_create(stream, "cost", id="0")
    r.xreadgroup("cost", "c", {keys.events_stream(1): ">"}, count=1)
    (cost,) = shards.group_infos(r).values()
    assert (cost["lag"], cost["pending"], cost["consumers"]) == (3, 1, 1)
    assert shards.stream_lengths(r, [keys.EVENTS, keys.DLQ]) == [4, 0]
    merged = shards.merge_group_infos([{"g": {"name": "g", "lag": None, "pending": 0,
                                              "consumers": 1}},
                                       {"g": {"name": "g", "lag": 2, "pending": 1,
                                              "consumers": 2}}])  # fmt: skip
    assert merged == {"g": {"name": "g", "lag": None, "pending": 1, "consumers": 2}}


def test_one_layout_reads_the_record_once_for_a_requests_reads(
    quiet: tuple[redis.Redis, str],
) -> None:
    """Inside ``one_layout`` (every view's request) the layout record is read once however
    many fetches the request makes, and only for that client; outside, each read reads it."""
    r, _ = quiet
    three_shards(r)
    other = redis.Redis(connection_pool=r.connection_pool)
    r.config_resetstat()
    with shards.one_layout(r) as found:
        assert found == shards.Layout(shards=SHARDS, tiers_since=float("inf"))
        for _ in range(5):
            assert shards.hgetall_many(r, [keys.session("s")]) == [{}]
        r.hset(keys.LAYOUT, keys.LAYOUT_SHARDS_FIELD, 1)  # changed mid-request: not seen
        assert shards.shard_count(r) == SHARDS
        assert shards.shard_count(other) == 1  # another client reads its own
    assert r.info("commandstats")["cmdstat_hmget"]["calls"] == 2
    assert shards.shard_count(r) == 1
