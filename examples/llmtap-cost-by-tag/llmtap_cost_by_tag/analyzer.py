"""The cost-by-tag analyzer: per UTC bucket and ``key=value`` tag, the sampled call events,
their exact cost, the cost estimated for every call (each event weighted by 1/sample_rate),
and the unpriced events; per day, the most expensive tagged calls.

Keys (all under ``llmtap:{s0}:x:cost-by-tag:``, the plugin's prefix):

- ``llmtap:{s0}:x:cost-by-tag:cost:{g}:{bucket}`` hash, fields ``<key>=<value>|<metric>``
  (integers), metrics ``events``, ``cost_nanousd``, ``est_cost_nanousd``, ``unpriced``; a call
  without tags counts under ``_untagged``.
- ``llmtap:{s0}:x:cost-by-tag:top:d:{day}`` sorted set, score USD, member JSON ``{call_id,
  cost_usd, tags}``, capped at ``TOP_N``.
"""

from __future__ import annotations

import json
from typing import Final

from llmtap import events, keys
from llmtap.plugin import BaseAnalyzer, Retention, Worker, WorkerContext
from llmtap_cost_by_tag import NAME

UNTAGGED: Final = "_untagged"
METRICS: Final = ("events", "cost_nanousd", "est_cost_nanousd", "unpriced")
TOP_N: Final = 50
_NANO: Final = 1e9


def tag_label(key: str, value: str) -> str:
    """Return the label one tag counts under: ``key=value``."""
    return f"{key}={value}"


def field(label: str, metric: str) -> str:
    """Return the hash field of one metric of one tag label (the metric follows the last |)."""
    return f"{label}|{metric}"


def cost_key(granularity: str, bucket_name: str) -> str:
    """Return the hash of one bucket (built by llmtap.keys, under the plugin's prefix)."""
    return keys.plugin_bucket(NAME, "cost", granularity, bucket_name)


def top_key(day: str) -> str:
    """Return the sorted set of one UTC day's most expensive tagged calls."""
    return keys.plugin_key(NAME, "top", "d", day)


class CostByTag(BaseAnalyzer):
    """Folds call events into per-tag counters (rollups carry no tags, so they are skipped)."""

    group = NAME
    wants_calls = True
    wants_rollups = False

    def __init__(self, retention: Retention) -> None:
        super().__init__()
        self.retention = retention
        self._tops: dict[str, dict[str, float]] = {}
        # minute start -> its (key, ttl) in each granularity: keys.bucket is strftime, slow
        self._keys: dict[int, list[tuple[str, int]]] = {}

    def add_call(self, event: events.CallEvent) -> None:
        """Count one call event under each of its tags in its minute, hour and day."""
        labels = [tag_label(k, v) for k, v in sorted(event.tags.items())] or [UNTAGGED]
        cost = event.estimated_cost_usd
        values = {"events": 1}
        if cost is None:
            values["unpriced"] = 1
        else:
            values["cost_nanousd"] = round(cost * _NANO)
            values["est_cost_nanousd"] = round(cost * _NANO / event.sample_rate)
        ints, ttls = self.out.ints, self.out.ttl
        for key, ttl in self._bucket_keys(event.start_time):
            fields = ints[key]
            for label in labels:
                for metric, value in values.items():
                    fields[field(label, metric)] += value
            ttls[key] = ttl
        if cost is not None and event.tags:
            self._offer(event, cost)

    def _bucket_keys(self, ts: float) -> list[tuple[str, int]]:
        minute = keys.bucket_start("m", ts)
        found = self._keys.get(minute)
        if found is None:
            if len(self._keys) > 10_000:
                self._keys.clear()
            found = self._keys[minute] = [
                (cost_key(g, keys.bucket(g, minute)), self.retention.ttl(g))
                for g in keys.GRANULARITIES
            ]
        return found

    def _offer(self, event: events.CallEvent, cost: float) -> None:
        day = keys.bucket("d", event.start_time)
        top = self._tops.setdefault(day, {})
        member = json.dumps(
            {"call_id": event.call_id, "cost_usd": cost, "tags": event.tags},
            sort_keys=True,
            separators=(",", ":"),
        )
        top[member] = cost
        if len(top) > 2 * TOP_N:  # keep memory bounded; the server trims to TOP_N
            for name in sorted(top, key=top.__getitem__)[: len(top) - TOP_N]:
                del top[name]
        key = top_key(day)
        self.out.top[key] = (TOP_N, top)
        self.out.ttl[key] = self.retention.ttl("d")

    def clear(self) -> None:
        """Forget everything folded."""
        super().clear()
        self._tops = {}


def build(ctx: WorkerContext) -> CostByTag:
    """Return a fresh analyzer for one unit (the runtime calls this once per commit)."""
    return CostByTag(ctx.retention)


WORKER: Final = Worker.plugin(NAME, "cost, events and estimated cost per call tag", build)
