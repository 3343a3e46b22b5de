"""The cost worker: exact cost, calls, errors and tokens per bucket and dimension, from rollups.

Rollups are exact whatever the sampling rate, so every number here is exact: cost is kept in
integer nano-USD (1e-9 USD) so sums agree in any order and across replicas; the query layer
converts to USD. Each rollup counts in one bucket of each granularity (UTC) of its
``window_start``, under the dimensions ``total``, ``backend:<b>``, ``model:<m>``,
``tenant:<t>`` and ``session:<s>``. From call events (sampled) come the most expensive calls
of each day, the count of call events without a price, and failed call events by error type
(every failed call is kept as an event at any sampling rate above 0). See docs/key-layout.md.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Final

from llmtap import aggregates, events, keys
from llmtap.plugin import Retention, Writes

# Integer metrics of a rollup row, in the order they are kept in memory.
METRICS: Final = aggregates.ROLLUP_METRICS
COST_FIELD_UNIT: Final = "nano-USD"
_MINUTE: Final = keys.BUCKET_SECONDS["m"]
_DAY: Final = keys.BUCKET_SECONDS["d"]

RowKey = tuple[int, str, str, str | None, str | None]


class CostProcessor:
    """Folds rollups and call events into exact per-bucket counters (see the module docstring)."""

    group = keys.GROUP_COST
    wants_calls = True
    wants_rollups = True

    def __init__(self, retention: Retention | None = None, top_n: int = 100) -> None:
        self.retention = retention or Retention()
        self.top_n = top_n
        self._rows: dict[RowKey, list[int]] = {}
        self._unpriced: Counter[tuple[int, str, str]] = Counter()
        self._failed: Counter[tuple[int, str, str, str | None, str]] = Counter()
        self._top: dict[int, list[tuple[float, str]]] = {}
        self._producers: dict[str, events.RollupEvent] = {}
        self._names: dict[tuple[str, int], str] = {}

    def add_rollup(self, event: events.RollupEvent) -> None:
        """Add every row of a rollup to its minute, and remember the producer's latest stats."""
        minute = keys.bucket_start("m", event.window_start)
        rows = self._rows
        for row in event.rows:
            key = (minute, row.backend, row.model, row.session, row.tenant)
            counters = rows.get(key)
            if counters is None:
                counters = rows[key] = [0] * (len(METRICS) + 1)
            counters[0] += row.calls
            counters[1] += row.errors
            counters[2] += row.input_tokens
            counters[3] += row.output_tokens
            counters[4] += row.cache_read_tokens
            counters[5] += row.cache_write_tokens
            counters[6] += row.reasoning_tokens
            counters[7] += row.unpriced_calls
            counters[8] += row.cost_nanousd
        latest = self._producers.get(event.producer_id)
        if latest is None or latest.seq < event.seq:
            self._producers[event.producer_id] = event

    def add_call(self, event: events.CallEvent) -> None:
        """Count a failed call event by its error type; count an unpriced call event, or offer
        a priced one to its day's top N."""
        if not event.success:
            minute = int(event.start_time // _MINUTE) * _MINUTE
            kind = event.error_type or aggregates.UNKNOWN_ERROR
            self._failed[minute, event.backend, event.model_name, event.tenant, kind] += 1
        cost = event.estimated_cost_usd
        if cost is None:
            minute = int(event.start_time // _MINUTE) * _MINUTE
            self._unpriced[minute, event.backend, event.model_name] += 1
            return
        day = int(event.start_time // _DAY) * _DAY
        heap = self._top.get(day)
        if heap is None:
            heap = self._top[day] = []
        if len(heap) < self.top_n:
            heapq.heappush(heap, (cost, aggregates.top_member(event)))
        elif cost > heap[0][0]:
            heapq.heapreplace(heap, (cost, aggregates.top_member(event)))

    def writes(self) -> Writes:
        """Return the increments, top-N additions and producer stats folded so far."""
        writes = Writes()
        for key, counters in self._rows.items():
            self._write_row(writes, key, counters)
        for (minute, backend, model), count in self._unpriced.items():
            for granularity in keys.GRANULARITIES:
                usage = keys.usage(granularity, self._name(granularity, minute))
                fields = writes.ints[usage]
                for dim in aggregates.dimensions(backend, model, None, None):
                    fields[aggregates.usage_field(dim, aggregates.UNPRICED_EVENTS)] += count
                writes.ttl[usage] = self.retention.ttl(granularity)
        for (minute, backend, model, tenant, kind), count in self._failed.items():
            for granularity in keys.GRANULARITIES:
                failed = keys.errors(granularity, self._name(granularity, minute))
                fields = writes.ints[failed]
                for dim in aggregates.error_dimensions(backend, model, tenant):
                    fields[aggregates.usage_field(dim, kind)] += count
                writes.ttl[failed] = self.retention.ttl(granularity)
        self._write_top(writes)
        self._write_producers(writes)
        return writes

    def clear(self) -> None:
        """Forget everything folded."""
        self._rows.clear()
        self._unpriced.clear()
        self._failed.clear()
        self._top.clear()
        self._producers.clear()
        if len(self._names) > 10_000:
            self._names.clear()

    def _write_row(self, writes: Writes, key: RowKey, counters: list[int]) -> None:
        minute, backend, model, session, tenant = key
        dims = aggregates.dimensions(backend, model, tenant, session)
        cost = counters[-1]
        metrics = [
            (name, value) for name, value in zip(METRICS, counters[:-1], strict=True) if value
        ]
        for granularity in keys.GRANULARITIES:
            name = self._name(granularity, minute)
            cost_key, usage_key = keys.cost(granularity, name), keys.usage(granularity, name)
            cost_fields, usage_fields = writes.ints[cost_key], writes.ints[usage_key]
            for dim in dims:
                cost_fields[dim] += cost
                for metric, value in metrics:
                    usage_fields[aggregates.usage_field(dim, metric)] += value
            ttl = self.retention.ttl(granularity)
            writes.ttl[cost_key] = writes.ttl[usage_key] = ttl

    def _write_top(self, writes: Writes) -> None:
        for day, heap in self._top.items():
            key = keys.top_calls(self._name("d", day))
            writes.top[key] = (self.top_n, {member: cost for cost, member in heap})
            writes.ttl[key] = self.retention.ttl("d")

    def _write_producers(self, writes: Writes) -> None:
        for producer_id, rollup in self._producers.items():
            fields = aggregates.producer_fields(rollup)
            key = keys.producer(producer_id)
            writes.latest[key] = (rollup.seq, fields)
            writes.ttl[key] = keys.PRODUCER_TTL_S

    def _name(self, granularity: str, ts: int) -> str:
        name = self._names.get((granularity, ts))
        if name is None:
            name = self._names[granularity, ts] = keys.bucket(granularity, ts)
        return name
