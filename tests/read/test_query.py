"""The read side: bucket cover, and query functions returning the ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from llmtap import events, keys
from llmtap.read import query
from llmtap.testing import Workload
from tests.consumer_helpers import burst
from tests.factories import call_event

DAY0 = 1_767_225_600  # 2026-01-01T00:00Z


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (0, 0, []),
        (0, 60, [("m", 0)]),
        (30, 90, [("m", 0), ("m", 60)]),
        (100, 100, [("m", 60)]),
        (0, 600, [("t", 0)]),
        (0, 3600, [("h", 0)]),
        (0, 6 * 3600, [("q", 0)]),
        (0, 86400, [("d", 0)]),
        (3540, 7260, [("m", 3540), ("h", 3600), ("m", 7200)]),
        (
            2940,
            7860,
            [("m", 2940), ("t", 3000), ("h", 3600), ("t", 7200), ("m", 7800)],
        ),
        (
            86340,
            2 * 86400 + 3660,
            [("m", 86340), ("d", 86400), ("h", 172800), ("m", 176400)],
        ),
        (
            3 * 3600 - 660,
            2 * 86400 - 3600 + 720,
            [
                ("m", 3 * 3600 - 660),
                ("t", 3 * 3600 - 600),
                *[("h", h * 3600) for h in (3, 4, 5)],
                *[("q", h * 3600) for h in (6, 12, 18, 24, 30, 36)],
                *[("h", h * 3600) for h in range(42, 47)],
                ("t", 47 * 3600),
                ("m", 47 * 3600 + 600),
                ("m", 47 * 3600 + 660),
            ],
        ),
    ],
)
def test_cover_takes_the_fewest_aligned_buckets(
    since: float, until: float, expected: list[tuple[str, int]]
) -> None:
    """Whole days, then quarter days, hours, ten minutes and minutes at the edges cover the
    widened range exactly."""
    assert query.cover(since, until) == expected


def test_cover_takes_no_ten_minutes_or_quarter_days_before_tiers_since() -> None:
    """Before ``tiers_since`` (a deployment upgraded from layout 3) only minutes, hours and days
    cover a range; from then on every granularity does."""
    since, until = 2940.0, 6 * 3600 + 7860.0
    assert query.cover(since, until, tiers_since=float("inf")) == [
        *[("m", 2940 + 60 * i) for i in range(11)],
        *[("h", h * 3600) for h in range(1, 8)],
        *[("m", 8 * 3600 + 60 * i) for i in range(11)],
    ]
    upgraded = query.cover(since, until, tiers_since=6 * 3600)
    assert upgraded[:11] == [("m", 2940 + 60 * i) for i in range(11)]
    assert ("q", 6 * 3600) not in upgraded  # 6 h + 7860 s ends inside the quarter day
    assert ("t", 8 * 3600) in upgraded and ("t", 3000) not in upgraded
    assert sum(keys.BUCKET_SECONDS[g] for g, _ in upgraded) == 6 * 3600 + 7860 - 2940


def test_cover_rejects_a_reversed_range() -> None:
    """A range that ends before it starts is an error."""
    with pytest.raises(ValueError, match="before"):
        query.cover(10, 5)


@pytest.fixture
def processed(r: redis.Redis, redis_url: str) -> Workload:
    """A workload of 20k events spread over 20 minutes, drained by both workers."""
    workload = Workload(31, start=DAY0 + 3000, span_s=1200)
    workload.write(r, 20_000)
    burst(redis_url)
    return workload


def test_cost_by_returns_exact_totals_per_dimension(r: redis.Redis, processed: Workload) -> None:
    """Total and per-backend cost, calls and tokens equal the ground truth, in nano-USD."""
    truth = processed.truth
    since, until = processed.start, processed.start + processed.span_s
    total = query.cost_by(r, "total", since, until)["total"]
    assert total["cost_nanousd"] == truth.cost_nanousd
    assert total["cost_usd"] == truth.cost_nanousd / 1e9
    assert total["calls"] == truth.calls and total["errors"] == truth.errors
    assert total["input_tokens"] == truth.tokens["input"]
    by_backend = query.cost_by(r, "backend", since, until)
    assert {b: row["cost_nanousd"] for b, row in by_backend.items()} == dict(truth.cost_by_backend)
    by_model = query.cost_by(r, "model", since, until)
    assert {m: row["calls"] for m, row in by_model.items()} == dict(truth.calls_by_model)


def test_every_granularity_agrees(r: redis.Redis, processed: Workload) -> None:
    """The whole day (one day bucket) and the exact span (hours and minutes) give equal totals."""
    whole_day = query.cost_by(r, "tenant", DAY0, DAY0 + 86400)
    span = query.cost_by(r, "tenant", processed.start, processed.start + processed.span_s)
    assert whole_day == span
    assert {"acme", "globex"} <= set(span)


def test_adjacent_ranges_add_up(r: redis.Redis, processed: Workload) -> None:
    """Splitting a range on a minute boundary splits its totals exactly."""
    start, end = processed.start, processed.start + processed.span_s
    middle = DAY0 + 3600
    left = query.cost_by(r, "total", start, middle)["total"]
    right = query.cost_by(r, "total", middle, end)["total"]
    whole = query.cost_by(r, "total", start, end)["total"]
    assert left["cost_nanousd"] + right["cost_nanousd"] == whole["cost_nanousd"]
    assert left["calls"] and right["calls"]


def test_throughput_and_error_rate_come_from_rollups(r: redis.Redis, processed: Workload) -> None:
    """Calls per minute and the error rate are the exact rollup counts over the range."""
    truth = processed.truth
    since, until = processed.start, processed.start + processed.span_s
    flow = query.throughput(r, since, until)
    assert flow["calls"] == truth.calls
    assert flow["calls_per_min"] == pytest.approx(truth.calls / flow["minutes"])
    assert sum(row["calls"] for row in flow["by_model"].values()) == truth.calls
    errors = query.error_rate(r, since, until)
    assert errors["error_rate"] == pytest.approx(truth.errors / truth.calls)
    assert set(errors["by_backend"]) == {b for b, _ in truth.call_events_by_model}


def test_latency_percentiles_count_every_call_event(r: redis.Redis, processed: Workload) -> None:
    """Per backend and model, the merged sketches hold exactly the call events."""
    since, until = processed.start, processed.start + processed.span_s
    rows = query.latency_percentiles(r, since, until)
    counts = {(row["backend"], row["model"]): row["count"] for row in rows}
    assert counts == dict(processed.truth.call_events_by_model)
    assert all(row["p50"] <= row["p90"] <= row["p99"] <= row["max"] * 1.01 for row in rows)


def test_latency_percentiles_are_within_one_percent(r: redis.Redis, redis_url: str) -> None:
    """Quantiles merged from minute, hour and day buckets are within 1% of the exact ones."""
    rng = np.random.default_rng(5)
    latencies = rng.lognormal(0.0, 1.0, 5_000)
    calls = [
        call_event(
            call_id=f"c{i}", start_time=DAY0 + i, end_time=DAY0 + i + float(x), latency=float(x)
        )
        for i, x in enumerate(latencies)
    ]
    pipe = r.pipeline(transaction=False)
    for i in range(0, len(calls), 100):
        pipe.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch(calls[i : i + 100])})
    pipe.execute()
    burst(redis_url, ["latency"])
    qs = (0.5, 0.9, 0.95, 0.99)
    (row,) = query.latency_percentiles(r, DAY0 + 1830, DAY0 + 5000, qs)  # m + h + m buckets
    inside = latencies[1800:5000]
    for q in qs:
        exact = np.quantile(inside, q, method="lower")
        assert row[f"p{q * 100:g}"] == pytest.approx(exact, rel=0.01)
    assert row["count"] == len(inside)
    assert row["mean"] == pytest.approx(inside.mean())
    assert row["min"] == inside.min() and row["max"] == inside.max()


def test_unknown_dimension_and_timing_are_rejected(r: redis.Redis) -> None:
    """Asking for a dimension or timing that is not stored raises ValueError."""
    with pytest.raises(ValueError, match="dimension"):
        query.cost_by(r, "colour", 0, 60)
    with pytest.raises(ValueError, match="timing"):
        query.latency_percentiles(r, 0, 60, timing="queueing")
