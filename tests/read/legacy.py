"""The old layout's view of the new one, for the frozen oracle (``tests.read.oracle``), which
reads sketch bins as latency-hash fields ``<timing>:<bin>`` with layout 2's
``aggregates.decode_timing``: copy every packed sketch's bins into its hash as those fields, and
give the oracle that decoder back (:func:`use_layout_2`), with layout 4's bucket cover. The fast
path ignores such fields (they are not fields of layouts 3 and 4), and the tests take its
answers before this runs anyway."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest
import redis

from llmtap import aggregates, keys
from llmtap.read import snapshot
from tests.read.oracle import query as oracle_query

TIMINGS = aggregates.TIMINGS


def use_layout_2(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lay the packed sketches out as layout 2 did and let the oracle decode them as it did;
    and let it cover a range with the buckets the fast path takes (layout 4's ten minutes and
    quarter days too), so both merge the same hashes in the same order and even float sums
    are equal. That the new buckets hold what the minutes and hours they span hold is
    ``tests.read.test_fast_path.test_ten_minutes_and_quarter_days_hold_what_they_span``."""
    assert copy_bins_into_hashes(r)
    monkeypatch.setattr(aggregates, "decode_timing", decode_timing_layout_2)
    use_layout_4_cover(monkeypatch)


def use_layout_4_cover(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the oracle cover ranges with layout 4's buckets, as the fast path does."""
    monkeypatch.setattr(oracle_query, "cover", snapshot.cover)


def decode_timing_layout_2(fields: Mapping[str, str], timing: str) -> aggregates.TimingFields:
    """Layout 2's ``aggregates.decode_timing``, verbatim: the bins are the hash's
    ``<timing>:<bin>`` fields."""
    prefix = aggregates.timing_field(timing, "")
    bins: dict[int, float] = {}
    for name, value in fields.items():
        if not name.startswith(prefix):
            continue
        suffix = name[len(prefix) :]
        if suffix.lstrip("-").isdigit():
            bins[int(suffix)] = float(value)
    return aggregates.TimingFields(
        n=int(fields.get(f"{prefix}n", 0)),
        w=float(fields.get(f"{prefix}w", 0.0)),
        total=float(fields.get(f"{prefix}sum", 0.0)),
        low=float(fields.get(f"{prefix}min", math.inf)),
        high=float(fields.get(f"{prefix}max", -math.inf)),
        bins=bins,
    )


def copy_bins_into_hashes(r: redis.Redis) -> int:
    """Replace each latency hash's packed ``<timing>:sketch`` fields with layout 2's
    ``<timing>:<bin>`` fields (the weights as ``repr``, which round-trips the float as the old
    fields did); return how many sketches were laid out."""
    copied = 0
    for index in r.scan_iter(match=f"{keys.PREFIX}:*:latidx:*", count=1000):
        granularity, bucket = index.decode().split(":")[-2:]
        shard = int(index.decode().split(":")[1][2:-1])  # "{s<k>}"
        for member in r.smembers(index):
            backend, model = aggregates.decode_latency_member(member)
            key = keys.on_shard(keys.latency(granularity, bucket, backend, model), shard)
            _, packed = aggregates.split_sketches(r.hgetall(key), TIMINGS)
            for timing, raw in packed.items():
                bins = aggregates.decode_sketch(raw)
                r.hset(key, mapping={f"{timing}:{i}": repr(w) for i, w in bins.items()})  # type: ignore[arg-type]
                r.hdel(key, aggregates.sketch_field(timing))
                copied += 1
    return copied
