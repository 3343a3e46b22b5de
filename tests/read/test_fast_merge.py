"""The vectorised merge: dense sketches answer like sparse ones, and merging decoded latency
hashes and their packed sketches with bincount gives the same floats as adding the hashes one by
one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmtap import aggregates
from llmtap.analyzers import sketch
from llmtap.read import latency

_values = st.floats(min_value=0.0, max_value=2 * sketch.MAX_VALUE, allow_nan=False)
_weights = st.sampled_from([1.0, 2.0, 10.0, 1 / 0.3, 1 / 0.7, 0.5])
_batches = st.lists(st.tuples(_values, _weights), min_size=0, max_size=40)
_qs = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=5)


def _sparse(batch: list[tuple[float, float]]) -> dict[int, float]:
    return sketch.accumulate([v for v, _ in batch], [w for _, w in batch])


def _dense(bins: dict[int, float]) -> np.ndarray:
    out = np.zeros(sketch.DENSE_SIZE)
    for i, w in bins.items():
        out[sketch.dense_slot(i)] += w
    return out


@given(_batches, _qs)
def test_dense_quantiles_equal_sparse_quantiles(
    batch: list[tuple[float, float]], qs: list[float]
) -> None:
    """The dense sketch of the same bins reports the same value at every quantile."""
    bins = _sparse(batch)
    assert sketch.dense_quantiles(_dense(bins), qs) == sketch.quantiles(bins, qs)


def test_dense_slots_round_trip_and_reject_foreign_bins() -> None:
    """Every bin index maps to its slot and back; an index outside the range is refused."""
    for i in (sketch.ZERO_INDEX, sketch.MIN_INDEX, 0, sketch.MAX_INDEX):
        assert sketch.dense_bin(sketch.dense_slot(i)) == i
    with pytest.raises(ValueError, match="outside"):
        sketch.dense_slot(sketch.MAX_INDEX + 1)


def test_dense_quantiles_reject_bad_quantiles_and_weights() -> None:
    """A quantile outside [0, 1] or a negative weight is an error, as for sparse sketches."""
    weights = np.zeros(sketch.DENSE_SIZE)
    weights[3] = 1.0
    with pytest.raises(ValueError, match="between 0 and 1"):
        sketch.dense_quantiles(weights, [1.5])
    weights[4] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        sketch.dense_quantiles(weights, [0.5])
    assert sketch.dense_quantiles(np.zeros(sketch.DENSE_SIZE), [0.5]) == [None]


def _hash(batch: list[tuple[float, float]]) -> dict[str, str | bytes]:
    """A latency hash as the latency worker writes it (latency timing only)."""
    fields: dict[str, str | bytes] = {}
    if batch:
        fields[aggregates.sketch_field("latency")] = aggregates.encode_sketch(_sparse(batch))
        fields[aggregates.timing_field("latency", "n")] = str(len(batch))
        fields[aggregates.timing_field("latency", "w")] = repr(sum(w for _, w in batch))
        fields[aggregates.timing_field("latency", "sum")] = repr(sum(v * w for v, w in batch))
        fields[aggregates.timing_field("latency", "min")] = repr(min(v for v, _ in batch))
        fields[aggregates.timing_field("latency", "max")] = repr(max(v for v, _ in batch))
    fields["unknown:field"] = "7"
    return fields


def _text(fields: dict[str, str | bytes]) -> dict[str, str]:
    """The hash's text fields (without its packed sketches)."""
    return aggregates.split_sketches(fields, ())[0]


def _packed(fields: dict[str, str | bytes]) -> bytes | None:
    """The hash's packed latency sketch (None when it has none)."""
    return aggregates.split_sketches(fields, ["latency"])[1].get("latency")


@given(st.lists(_batches, min_size=1, max_size=6))
def test_decode_parts_and_join_equal_decode(batches: list[list[tuple[float, float]]]) -> None:
    """Decoding hashes one by one (the cache's unit) and joining them gives decode's arrays
    (in the order that matters: each code's values in hash order)."""
    hashes = [_hash(b) for b in batches]
    pairs = [("b", str(i)) for i in range(len(hashes))]
    whole = latency.merge(latency.decode(pairs, hashes), "model")
    joined = latency.merge(latency.join(pairs, latency.decode_parts(hashes)), "model")
    assert np.array_equal(whole.sums, joined.sums)
    assert np.array_equal(whole.lows, joined.lows) and np.array_equal(whole.highs, joined.highs)


def test_packed_sketches_outside_the_range_or_malformed_are_refused() -> None:
    """A packed sketch with a bin beyond the sketch's range, or bytes that are not a packed
    sketch, raise ValueError instead of being merged into a wrong slot."""
    beyond = aggregates.encode_sketch({sketch.MAX_INDEX + 1: 1.0})
    for bad in (beyond, b"\x00" * 12, b"\x00" * 8):
        with pytest.raises(ValueError):
            latency.decode([("b", "m")], [{b"ttft:sketch": bad}])


@given(st.lists(_batches, min_size=1, max_size=6))
def test_bincount_merge_equals_adding_hashes_in_order(
    batches: list[list[tuple[float, float]]],
) -> None:
    """Merged weights, count, weight, sum and extremes equal the one-by-one merge, float for
    float, even with fractional weights (where the order of additions matters)."""
    hashes = [_hash(b) for b in batches]
    pairs = [("b", "m")] * len(hashes)
    merged = latency.merge(latency.decode(pairs, hashes), "all")
    decoded = [aggregates.decode_timing(_text(h), "latency", _packed(h)) for h in hashes]
    weight = total = 0.0
    for d in decoded:
        weight += d.w
        total += d.total
    count = sum(d.n for d in decoded)
    rows = merged.rows((0.0, 0.25, 0.5, 0.99, 1.0), "latency")
    if not count:
        assert rows == []
        return
    (row,) = rows
    bins = sketch.merge(*(d.bins for d in decoded))
    assert row["count"] == count
    assert row["weighted_count"] == weight
    assert row["mean"] == (total / weight if weight else None)
    assert row["min"] == min(d.low for d in decoded)
    assert row["max"] == max(d.high for d in decoded)
    assert [row[k] for k in ("p0", "p25", "p50", "p99", "p100")] == sketch.quantiles(
        bins, (0.0, 0.25, 0.5, 0.99, 1.0)
    )


def test_field_codes_follow_the_layout() -> None:
    """Statistics and tokens/s get distinct codes; unknown fields (layout 2's bin fields among
    them: bins live in packed sketches now) are ignored."""
    names = [
        aggregates.timing_field(t, s) for t in aggregates.TIMINGS for s in aggregates.TIMING_STATS
    ] + [aggregates.timing_field(aggregates.TPS, s) for s in aggregates.TPS_STATS]
    codes = [latency.field_code(n) for n in names]
    assert len(set(codes)) == len(codes) and min(codes) >= 0
    for name in ("latency:avg", "tps:min", "other:3", "latency", "latency:1.5", "latency:5"):
        assert latency.field_code(name) == -1
    assert latency.field_code(b"latency:n") == latency.field_code("latency:n")
