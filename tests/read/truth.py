"""Seeded synthetic traffic for the read-side tests, and its ground truth recomputed from the
raw events independently of the workers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from llmtap import events, keys
from llmtap.events import CallEvent, RollupEvent
from llmtap.testing import Workload
from tests.consumer_helpers import burst

DAY0 = 1_767_225_600  # 2026-01-01T00:00Z
NOW = DAY0 + 7200.0  # the synthetic traffic runs from DAY0 + 3000 s for 20 minutes
WORKERS = ("cost", "latency", "sessions")


@dataclass
class Truth:
    """Ground truth recomputed from the raw events, independently of the workers."""

    calls: list[CallEvent] = field(default_factory=list)
    rollups: list[RollupEvent] = field(default_factory=list)

    def rows(self) -> Iterator[events.RollupRow]:
        """Every rollup row."""
        for rollup in self.rollups:
            yield from rollup.rows

    def cost_by(self, attr: str) -> dict[str, int]:
        """Nano-USD per value of a rollup-row attribute (rows without a value are skipped)."""
        out: Counter[str] = Counter()
        for row in self.rows():
            value = getattr(row, attr)
            if value:
                out[value] += row.cost_nanousd
        return dict(out)

    def sum_rows(self, metric: str, **where: str) -> int:
        """Sum of a row metric over rows matching ``where``."""
        return sum(
            getattr(row, metric)
            for row in self.rows()
            if all(getattr(row, k) == v for k, v in where.items())
        )


def seed(r: redis.Redis, redis_url: str) -> Truth:
    """Write 8k synthetic events (one producer), drain them with the cost, latency and sessions
    workers, and return their ground truth."""
    workload = Workload(7, start=DAY0 + 3000, span_s=1200)
    found = Truth()
    pipe = r.pipeline(transaction=False)
    for fields in workload.entries(8_000):
        pipe.xadd(keys.EVENTS, fields)  # type: ignore[arg-type]
        for item in events.decode_entry(fields):
            assert not isinstance(item, events.EventError)
            (found.calls if isinstance(item, CallEvent) else found.rollups).append(item)
    pipe.execute()
    burst(redis_url, WORKERS)
    return found
