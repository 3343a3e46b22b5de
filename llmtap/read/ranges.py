"""Range readers for any time-bucketed aggregate, the built-in ones and plugins' alike.

A plugin that writes one hash per (granularity, bucket), as the built-in workers do (see
:func:`llmtap.keys.plugin_bucket`), reads a time range back with these: the range is covered
with the fewest buckets (whole UTC days, then quarter days, hours, ten minutes, and minutes at
the edges, as :func:`llmtap.read.query.cover` does), the hashes are fetched in one pipeline and
summed (integers exactly), and sketches written in the latency hashes' format (stats in the
hash, bins in a packed sketch beside it, see :func:`llmtap.plugin.add_sketch`) are merged bin by
bin.
``key_of(granularity, bucket_name)`` names the hash of one bucket; ``until`` is passed in
(there is no hidden clock).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import redis

from llmtap import aggregates
from llmtap.aggregates import TimingFields
from llmtap.analyzers import sketch
from llmtap.keys import bucket
from llmtap.read import shards
from llmtap.read.fetch import fetch
from llmtap.read.query import cover

__all__ = [
    "QUANTILES",
    "bucket_names",
    "hashes",
    "merge_timings",
    "quantiles",
    "sum_floats",
    "sum_ints",
    "timings",
]

QUANTILES: Final = (0.5, 0.95, 0.99)
KeyOf = Callable[[str, str], str]


def bucket_names(since: float, until: float, tiers_since: float = 0.0) -> list[tuple[str, str]]:
    """Return the (granularity, bucket name) pairs covering ``[since, until)`` exactly (the
    range widened to whole minutes; ten-minute and quarter-day buckets from ``tiers_since``
    on, see :func:`llmtap.read.shards.tiers_since`). Raises ValueError if ``until < since``."""
    return [(g, bucket(g, start)) for g, start in cover(since, until, tiers_since)]


def _names(client: redis.Redis, key_of: KeyOf, since: float, until: float) -> list[str]:
    covered = bucket_names(since, until, shards.tiers_since(client))
    return [key_of(granularity, name) for granularity, name in covered]


def hashes(client: redis.Redis, key_of: KeyOf, since: float, until: float) -> list[dict[str, str]]:
    """Return the hash of every bucket covering the range (one pipeline; missing: empty),
    without packed sketch fields (``*:sketch``, binary: read them with :func:`timings`)."""
    names = _names(client, key_of, since, until)
    return [aggregates.split_sketches(reply, ())[0] for reply in fetch(client, names).hashes]


def sum_ints(client: redis.Redis, key_of: KeyOf, since: float, until: float) -> dict[str, int]:
    """Return field -> the exact sum over the range of integer hashes (HINCRBY counters)."""
    out: defaultdict[str, int] = defaultdict(int)
    for fields in hashes(client, key_of, since, until):
        for name, value in fields.items():
            out[name] += int(value)
    return dict(out)


def sum_floats(client: redis.Redis, key_of: KeyOf, since: float, until: float) -> dict[str, float]:
    """Return field -> the sum over the range of numeric hashes (float increments)."""
    out: defaultdict[str, float] = defaultdict(float)
    for fields in hashes(client, key_of, since, until):
        for name, value in fields.items():
            out[name] += float(value)
    return dict(out)


def timings(
    client: redis.Redis, key_of: KeyOf, metric: str, since: float, until: float
) -> TimingFields:
    """Return ``metric``'s sketch and stats (written with :func:`llmtap.plugin.add_sketch`)
    merged over the hashes of the buckets covering the range (one pipeline)."""
    names = _names(client, key_of, since, until)
    split = [aggregates.split_sketches(reply, [metric]) for reply in fetch(client, names).hashes]
    return merge_timings([f for f, _ in split], metric, [p.get(metric) for _, p in split])


def merge_timings(
    fields: Sequence[Mapping[str, str]], metric: str, sketches: Sequence[bytes | None] = ()
) -> TimingFields:
    """Return ``metric``'s sketch and stats merged over hashes in the latency format
    (``<metric>:n``, ``:w``, ``:sum``, ``:min``, ``:max``; see :func:`llmtap.plugin.add_sketch`)
    given as text fields and their packed sketches (``sketches[i]``, the ``<metric>:sketch``
    field of hash ``i``; bins empty without them): counts and weights add, extremes combine."""
    packed = list(sketches) + [None] * (len(fields) - len(sketches))
    parts = [
        aggregates.decode_timing(one, metric, p) for one, p in zip(fields, packed, strict=True)
    ]
    return TimingFields(
        n=sum(p.n for p in parts),
        w=math.fsum(p.w for p in parts),
        total=math.fsum(p.total for p in parts),
        low=min((p.low for p in parts), default=math.inf),
        high=max((p.high for p in parts), default=-math.inf),
        bins=sketch.merge(*(p.bins for p in parts)),
    )


def quantiles(merged: TimingFields, qs: Sequence[float] = QUANTILES) -> dict[str, float | None]:
    """Return ``{"p50": ..., "p95": ..., "p99": ...}`` (1% relative accuracy; None if empty),
    clamped to the observed minimum and maximum."""
    out: dict[str, float | None] = {}
    for q, value in zip(qs, sketch.quantiles(merged.bins, qs), strict=True):
        label = f"p{q * 100:g}"
        out[label] = None if value is None else min(max(value, merged.low), merged.high)
    return out
