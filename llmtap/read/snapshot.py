"""Everything the views of one range read, fetched once: the buckets covering the range, their
cost and usage hashes summed, and their latency sketches merged (read on first use, once).

A request builds one :class:`Snapshot` and hands it to every view it shows (the report builds
cost, performance and insights from the same one), so no bucket is read or merged twice.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import redis

from llmtap import aggregates, keys
from llmtap.aggregates import USAGE_METRICS
from llmtap.read import latency
from llmtap.read.fetch import Hash, fetch

Bucket = tuple[str, int]
T = TypeVar("T")


def cover(since: float, until: float) -> list[Bucket]:
    """Return the (granularity, bucket start) pairs that exactly cover the widened range.

    ``since`` is rounded down and ``until`` up to whole minutes; at each step the largest
    aligned bucket that fits is taken. Raises ValueError if ``until < since``.
    """
    if until < since:
        raise ValueError("until is before since")
    start = math.floor(since / 60) * 60
    end = math.ceil(until / 60) * 60
    out: list[Bucket] = []
    t = start
    while t < end:
        granularity = next(
            g
            for g in ("d", "h", "m")
            if t % keys.BUCKET_SECONDS[g] == 0 and t + keys.BUCKET_SECONDS[g] <= end
        )
        out.append((granularity, t))
        t += keys.BUCKET_SECONDS[granularity]
    return out


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
    ) -> None:
        self.client = client
        self.since = since
        self.until = until
        self.buckets = list(buckets)
        self.costs, self.usage = counts
        self._index = index
        self._rows: dict[str, dict[str, dict[str, Any]]] | None = None
        self._decoded: latency.Decoded | None = None
        self._merged: dict[str, latency.Merged] = {}

    @classmethod
    def read(cls, client: redis.Redis, since: float, until: float) -> Snapshot:
        """Read the cost and usage hashes and latency indexes of the range in one round trip.

        Raises ValueError if ``until < since``; Redis errors propagate.
        """
        buckets = cover(since, until)
        names = bucket_names(buckets)
        hashes = [k for g, name in names for k in (keys.cost(g, name), keys.usage(g, name))]
        replies = fetch(client, hashes, [keys.latency_index(g, name) for g, name in names])
        counts = sum_counts(replies.hashes)
        return cls(client, since, until, buckets, counts, replies.sets)

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
            for (g, name), members in zip(bucket_names(self.buckets), self._index, strict=True):
                for member in members:
                    pair = aggregates.decode_latency_member(member)
                    pairs.append(pair)
                    names.append(keys.latency(g, name, *pair))
            self._decoded = latency.decode(pairs, fetch(self.client, names).hashes)
        return self._decoded


def bucket_names(buckets: Sequence[Bucket]) -> list[tuple[str, str]]:
    """Return (granularity, bucket name) of each bucket."""
    return [(g, keys.bucket(g, start)) for g, start in buckets]


def sum_counts(replies: Sequence[Hash]) -> tuple[dict[str, int], dict[str, int]]:
    """Return the cost hashes (even replies) and usage hashes (odd) summed field by field."""
    costs: defaultdict[str, int] = defaultdict(int)
    usage: defaultdict[str, int] = defaultdict(int)
    for i, reply in enumerate(replies):
        target = costs if i % 2 == 0 else usage
        for field, value in aggregates.decode_counts(reply).items():
            target[field] += value
    return dict(costs), dict(usage)


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
