"""Everything the views of one range read, fetched once: the buckets covering the range, their
cost and usage hashes summed, and their latency sketches merged (read on first use, once).

A request builds one :class:`Snapshot` and hands it to every view it shows (the report builds
cost, performance and insights from the same one), so no bucket is read or merged twice. With a
:class:`~llmtap.read.bucketcache.BucketCache`, closed buckets come from the cache.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import redis

from llmtap import aggregates, keys
from llmtap.aggregates import USAGE_METRICS
from llmtap.read import latency, shards
from llmtap.read.bucketcache import BucketCache
from llmtap.read.fetch import Hash, fetch

Bucket = tuple[str, int]
T = TypeVar("T")


def cover(since: float, until: float, tiers_since: float = 0.0) -> list[Bucket]:
    """Return the (granularity, bucket start) pairs that exactly cover the widened range.

    ``since`` is rounded down and ``until`` up to whole minutes; at each step the largest
    aligned bucket that fits is taken: days, quarter days, hours, ten minutes, minutes, so a
    day's range takes about 20 buckets. Ten-minute and quarter-day buckets are taken only from
    ``tiers_since`` on (before it, a deployment that ran layout 3 wrote none; see
    :func:`llmtap.read.shards.tiers_since`). Raises ValueError if ``until < since``.
    """
    if until < since:
        raise ValueError("until is before since")
    start = math.floor(since / 60) * 60
    end = math.ceil(until / 60) * 60
    out: list[Bucket] = []
    t = start
    while t < end:
        tiers = _LARGEST_FIRST if t >= tiers_since else _BASE_LARGEST_FIRST
        granularity, size = next(
            (g, size) for g, size in tiers if t % size == 0 and t + size <= end
        )
        out.append((granularity, t))
        t += size
    return out


_LARGEST_FIRST: Final = sorted(keys.BUCKET_SECONDS.items(), key=lambda item: -item[1])
_BASE_LARGEST_FIRST: Final = [(g, s) for g, s in _LARGEST_FIRST if g in keys.BASE_GRANULARITIES]


class Snapshot:
    """The aggregates of ``[since, until)``: use :meth:`read`."""

    def __init__(
        self,
        client: redis.Redis,
        since: float,
        until: float,
        buckets: Sequence[Bucket],
        counts: tuple[dict[str, int], dict[str, int]],
        index: Sequence[Sequence[aggregates.Raw]],
        cache: BucketCache | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.since = since
        self.until = until
        self.buckets = list(buckets)
        self.costs, self.usage = counts
        self._index = index
        self._rows: dict[str, dict[str, dict[str, Any]]] | None = None
        self._decoded: latency.Decoded | None = None
        self._merged: dict[str, latency.Merged] = {}

    @classmethod
    def read(
        cls, client: redis.Redis, since: float, until: float, cache: BucketCache | None = None
    ) -> Snapshot:
        """Read the cost and usage hashes and latency indexes of the range in one round trip
        (with ``cache``, only those of buckets it does not hold closed).

        Raises ValueError if ``until < since``; Redis errors propagate.
        """
        buckets = cover(since, until, shards.tiers_since(client))
        closed = [cache is not None and cache.closed(g, start) for g, start in buckets]
        names = bucket_names(buckets)
        hashes = [
            (k, shut)
            for (g, name), shut in zip(names, closed, strict=True)
            for k in (keys.cost(g, name), keys.usage(g, name))
        ]
        sets = [(keys.latency_index(g, n), c) for (g, n), c in zip(names, closed, strict=True)]
        # Without a cache the replies are summed as they came (bytes fields, text numbers);
        # a cache keeps each hash decoded.
        decode = _decode_counts if cache is not None else list
        counts, index = _read_through(client, cache, hashes, sets, decode)
        return cls(client, since, until, buckets, sum_counts(counts), index, cache)

    @property
    def minutes(self) -> float:
        """The length of the covered (widened) range in minutes."""
        return sum(keys.BUCKET_SECONDS[g] for g, _ in self.buckets) / 60

    def cost_by(self, dimension: str) -> dict[str, dict[str, Any]]:
        """Return cost and usage per value of ``dimension`` (fresh rows, see
        :func:`llmtap.read.query.cost_by`)."""
        if self._rows is None:
            self._rows = rows_by_kind(self.costs, self.usage)
        return {name: dict(row) for name, row in self._rows.get(dimension, {}).items()}

    def merged(self, by: str) -> latency.Merged:
        """Return the latency sketches merged per group of ``by`` (read on first use)."""
        found = self._merged.get(by)
        if found is None:
            found = self._merged[by] = latency.merge(self._latency(), by)
        return found

    def _latency(self) -> latency.Decoded:
        if self._decoded is None:
            pairs, names = [], []
            cache = self.cache
            for (g, start), members in zip(self.buckets, self._index, strict=True):
                name, shut = keys.bucket(g, start), cache is not None and cache.closed(g, start)
                for member in members:
                    pair = aggregates.decode_latency_member(member)
                    pairs.append(pair)
                    names.append((keys.latency(g, name, *pair), shut))
            if cache is None:
                hashes = fetch(self.client, [k for k, _ in names]).hashes
                self._decoded = latency.decode(pairs, hashes)
            else:
                parts, _ = _read_through(self.client, cache, names, [], latency.decode_parts)
                self._decoded = latency.join(pairs, parts)
        return self._decoded


Named = Sequence[tuple[str, bool]]  # key names, and whether a cache may keep each


def _read_through(
    client: redis.Redis,
    cache: BucketCache | None,
    hashes: Named,
    sets: Named,
    decode: Callable[[Sequence[Hash]], Sequence[Any]],
) -> tuple[list[Any], list[list[aggregates.Raw]]]:
    """Return the decoded hashes and the set members of the keys named, taking those a cache
    holds from it and reading every other one in one :func:`fetch` (keeping the closed ones)."""
    found_hashes = [cache.get(k) if cache and keep else None for k, keep in hashes]
    found_sets = [cache.get(k) if cache and keep else None for k, keep in sets]
    want_h = [i for i, v in enumerate(found_hashes) if v is None]
    want_s = [i for i, v in enumerate(found_sets) if v is None]
    replies = fetch(client, [hashes[i][0] for i in want_h], [sets[i][0] for i in want_s])
    for wanted, named, found, got in (
        (want_h, hashes, found_hashes, decode(replies.hashes)),
        (want_s, sets, found_sets, replies.sets),
    ):
        for i, value in zip(wanted, got, strict=True):
            found[i] = value
            key, keep = named[i]
            if cache is not None and keep:
                cache.put(key, value)
    return found_hashes, found_sets  # type: ignore[return-value]


def _decode_counts(replies: Sequence[Hash]) -> list[dict[str, int]]:
    return [aggregates.decode_counts(reply) for reply in replies]


def bucket_names(buckets: Sequence[Bucket]) -> list[tuple[str, str]]:
    """Return (granularity, bucket name) of each bucket."""
    return [(g, keys.bucket(g, start)) for g, start in buckets]


def sum_counts(
    replies: Sequence[Mapping[Any, Any]],
) -> tuple[dict[str, int], dict[str, int]]:
    """Return the cost hashes (even items) and usage hashes (odd) summed field by field, in the
    order fields first appear. A hash may be a reply (bytes fields, numbers as text) or decoded
    (:func:`llmtap.aggregates.decode_counts`); the sum is the same."""
    costs: dict[Any, int] = {}
    usage: dict[Any, int] = {}
    for i, fields in enumerate(replies):
        target = costs if i % 2 == 0 else usage
        get = target.get
        for field, value in fields.items():
            target[field] = get(field, 0) + int(value)
    return _named(costs), _named(usage)


def _named(summed: Mapping[Any, int]) -> dict[str, int]:
    """Return fields summed under bytes or text names as one dict of text names (a field first
    seen under either spelling keeps that place)."""
    if all(type(name) is str for name in summed):
        return dict(summed)
    out: dict[str, int] = {}
    for name, value in summed.items():
        text = aggregates.text(name)
        out[text] = out.get(text, 0) + value
    return out


def empty_row() -> dict[str, Any]:
    """Return a cost row with every count zero."""
    return {"cost_nanousd": 0, **dict.fromkeys(USAGE_METRICS, 0)}


def rows_by_kind(
    costs: Mapping[str, int], usage: Mapping[str, int]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Return dimension kind -> value -> cost row (cost in nano-USD and USD, usage metrics),
    in one pass over the summed fields."""
    rows: defaultdict[str, defaultdict[str, dict[str, Any]]] = defaultdict(
        lambda: defaultdict(empty_row)
    )
    for field, value in costs.items():
        kind, name = aggregates.split_dimension(field)
        rows[kind][name]["cost_nanousd"] += value
    for field, value in usage.items():
        dim, metric = aggregates.split_usage_field(field)
        kind, name = aggregates.split_dimension(dim)
        row = rows[kind][name]
        row[metric] = row.get(metric, 0) + value
    for by_name in rows.values():
        for row in by_name.values():
            row["cost_usd"] = aggregates.usd(row["cost_nanousd"])
    return {kind: dict(by_name) for kind, by_name in rows.items()}
