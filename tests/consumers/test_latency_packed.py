"""The latency worker's packed sketch fields (layout 3): what the commit script stores equals the
sketch of the events, float for float, over several commits, for values from zero through
sub-millisecond to hours, with fractional weights (which integer counters could not hold)."""

from __future__ import annotations

import redis

from llmtap import aggregates, events, keys
from llmtap.analyzers import sketch
from tests.consumer_helpers import burst
from tests.factories import call_event

T0 = 1_767_225_600.0
MINUTE = keys.bucket("m", T0)


def _call(i: int, latency: float, rate: float) -> events.CallEvent:
    return call_event(
        call_id=f"c{i}", start_time=T0 + i % 50, end_time=T0 + i % 50 + latency,
        latency=latency, sample_rate=rate, network_latency=None, processing_time=None,
        ttft=None,
    )  # fmt: skip


def _commit(r: redis.Redis, url: str, calls: list[events.CallEvent]) -> None:
    r.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch(calls)})
    burst(url, ["latency"])


def _stored(r: redis.Redis, granularity: str, timing: str = "latency") -> dict[int, float]:
    key = keys.latency(granularity, keys.bucket(granularity, T0), "openai", "gpt-4o")
    raw = r.hget(key, aggregates.sketch_field(timing))
    return aggregates.decode_sketch(raw)  # type: ignore[arg-type]


def test_packed_bins_equal_the_events_sketch_over_several_commits(
    r: redis.Redis, redis_url: str
) -> None:
    """Three commits, each reaching below the lowest bin stored so far (so the string is
    extended at its front) and above it: the stored weights are the per-commit sketches added
    in commit order, exactly, in every granularity."""
    rates = (1.0, 0.3, 0.7)  # weights 1, 3.333..., 1.428...: fractional
    commits = [
        [2.0, 3.5, 3.5, 60.0],
        [0.0, 0.25, 2.0, 7200.0, 1e-5],  # zero, an hour, sub-100 µs (clamped to the lowest bin)
        [0.0005, 0.002, 3.5, 9e6],  # sub-millisecond, and beyond a week (the top bin)
    ]
    expected: dict[int, float] = {}
    n = 0
    for values in commits:
        calls = [_call(n + j, v, rates[(n + j) % 3]) for j, v in enumerate(values)]
        n += len(values)
        _commit(r, redis_url, calls)
        batch = sketch.accumulate(values, [1.0 / c.sample_rate for c in calls])
        for index, weight in batch.items():
            expected[index] = expected.get(index, 0.0) + weight
    assert sketch.ZERO_INDEX in expected and sketch.MIN_INDEX in expected
    assert sketch.MAX_INDEX in expected
    for granularity in keys.GRANULARITIES:
        assert _stored(r, granularity) == expected
    assert _stored(r, "m", "ttft") == {}  # a timing no call reported has no sketch


def test_the_hash_holds_stats_and_one_sketch_field_per_timing(
    r: redis.Redis, redis_url: str
) -> None:
    """The latency hash keeps n, w, sum, min, max and one packed ``<timing>:sketch`` field per
    reported timing, no field per bin, and no key beside it."""
    _commit(r, redis_url, [_call(i, 0.5 + i, 0.5) for i in range(20)])
    key = keys.latency("m", MINUTE, "openai", "gpt-4o")
    fields = {f.decode() for f in r.hgetall(key)}
    assert fields == {
        "latency:n",
        "latency:w",
        "latency:sum",
        "latency:min",
        "latency:max",
        "latency:sketch",
    }  # fmt: skip (the calls report no other timing and no output tokens)
    assert {k.decode() for k in r.scan_iter(match=keys.latency("m", MINUTE, "*", "*") + "*")} == {
        key
    }


def test_every_recordable_value_has_a_bin_in_the_packed_range() -> None:
    """From zero through 1 µs to years, every value maps into [MIN_INDEX, MAX_INDEX] or the
    zero bin, so a packed sketch is at most DENSE_SIZE + 1 float64s long."""
    values = [0.0, 1e-9, 1e-6, 1e-4, 1e-3, 0.5, 3600.0, 86400.0, 7 * 86400.0, 3e9]
    for index in sketch.indices(values).tolist():
        assert index == sketch.ZERO_INDEX or sketch.MIN_INDEX <= index <= sketch.MAX_INDEX
    widest = aggregates.encode_sketch({i: 1.0 for i in (sketch.MIN_INDEX, sketch.MAX_INDEX)})
    assert len(widest) == 8 * (sketch.DENSE_SIZE + 1)
