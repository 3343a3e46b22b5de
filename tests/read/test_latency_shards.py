"""Shard copies of a latency hash merge like one hash: stats added (min/max as extremes) and the
packed sketches' bins added in shard order, as layout 2's field per bin was."""

from __future__ import annotations

from llmtap import aggregates
from llmtap.analyzers import sketch
from llmtap.read import shards


def _copy(values: list[float], weight: float) -> dict[bytes, bytes]:
    bins = sketch.accumulate(values, [weight] * len(values))
    return {
        b"latency:n": str(len(values)).encode(),
        b"latency:w": repr(weight * len(values)).encode(),
        b"latency:min": repr(min(values)).encode(),
        b"latency:max": repr(max(values)).encode(),
        b"latency:sketch": aggregates.encode_sketch(bins),
    }


def test_shard_copies_of_a_latency_hash_merge_bins_and_stats() -> None:
    """Bins of two shards' sketches add (fractional weights, overlapping and disjoint bins, the
    zero bin), counts add, and the extremes are those of both copies."""
    first, second = [0.0, 0.5, 2.0, 2.0], [0.001, 2.0, 900.0]
    merged = shards.merge_hashes([_copy(first, 1 / 0.3), _copy(second, 1 / 0.7)])
    fields, packed = aggregates.split_sketches(merged, ["latency"])
    expected: dict[int, float] = {}
    for values, weight in ((first, 1 / 0.3), (second, 1 / 0.7)):
        for index, w in sketch.accumulate(values, [weight] * len(values)).items():
            expected[index] = expected.get(index, 0.0) + w
    assert aggregates.decode_sketch(packed["latency"]) == expected
    assert sketch.ZERO_INDEX in expected
    assert fields["latency:n"] == "7"
    assert (float(fields["latency:min"]), float(fields["latency:max"])) == (0.0, 900.0)


def test_one_shard_copy_is_returned_as_stored() -> None:
    """With one copy holding the sketch, the merged field is its bytes unchanged."""
    copy = _copy([1.0, 3.0], 2.0)
    merged = shards.merge_hashes([copy, {}])
    assert merged[b"latency:sketch"] == copy[b"latency:sketch"]
