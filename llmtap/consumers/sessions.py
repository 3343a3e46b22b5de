"""The sessions worker: per-session summaries and capped timelines, and per-day call details.

A session's summary hash (``keys.session``) holds exact counters from rollups (``calls``,
``errors``, token counts, ``cost_nanousd``) and, from the sampled call events, ``events``,
``backend:<b>``/``model:<m>``/``thread:<t>`` event counts, ``latency_sum``, ``first_seen`` and
``last_seen``. Its timeline (``keys.session_timeline``) keeps the ``max_history`` newest call
events. Both expire ``keys.SESSION_TTL_S`` after the last write. The day's call-detail hash
(``keys.call_details``) feeds the insights: weighted counts and cost per prompt hash, and per
model the weighted retries, the weighted cost of failed calls and the largest prompt.
"""

from __future__ import annotations

import heapq
from typing import Final

from llmtap import aggregates, events, keys
from llmtap.plugin import Retention, Writes

ROLLUP_METRICS: Final = aggregates.SESSION_METRICS
_DAY: Final = keys.BUCKET_SECONDS["d"]


class SessionsProcessor:
    """Folds rollups and call events into session summaries, timelines and call details."""

    group = keys.GROUP_SESSIONS
    wants_calls = True
    wants_rollups = True

    def __init__(self, retention: Retention | None = None, max_history: int = 10_000) -> None:
        self.retention = retention or Retention()
        self.max_history = max_history
        self._writes = Writes()
        self._timelines: dict[str, list[tuple[float, str]]] = {}

    def add_rollup(self, event: events.RollupEvent) -> None:
        """Add each session row's exact counters to its session summary."""
        for row in event.rows:
            if not row.session:
                continue
            key = keys.session(row.session)
            fields = self._writes.ints[key]
            for metric in ROLLUP_METRICS:
                value = getattr(row, metric)
                if value:
                    fields[metric] += value
            self._writes.set_min(key, "first_seen", event.window_start)
            self._writes.set_max(key, "last_seen", event.window_end)
            self._writes.ttl[key] = keys.SESSION_TTL_S

    def add_call(self, event: events.CallEvent) -> None:
        """Add a call event to its session (if any) and to its day's call details."""
        self._add_details(event)
        if event.session_id:
            self._add_to_session(event.session_id, event)

    def writes(self) -> Writes:
        """Return the summary increments, timeline additions and details folded so far."""
        for session_id, heap in self._timelines.items():
            key = keys.session_timeline(session_id)
            self._writes.top[key] = (self.max_history, {m: ts for ts, m in heap})
            self._writes.ttl[key] = keys.SESSION_TTL_S
        return self._writes

    def clear(self) -> None:
        """Forget everything folded."""
        self._writes = Writes()
        self._timelines.clear()

    def _add_to_session(self, session_id: str, event: events.CallEvent) -> None:
        key = keys.session(session_id)
        ints = self._writes.ints[key]
        ints["events"] += 1
        field = aggregates.session_usage_field
        ints[field("backend", event.backend)] += 1
        ints[field("model", event.model_name)] += 1
        ints[field("thread", event.thread_name or aggregates.NO_THREAD)] += 1
        if not event.success:
            ints["failed_events"] += 1
        self._writes.floats[key]["latency_sum"] += event.latency
        self._writes.set_min(key, "first_seen", event.start_time)
        self._writes.set_max(key, "last_seen", event.end_time)
        self._writes.ttl[key] = keys.SESSION_TTL_S
        heap = self._timelines.setdefault(session_id, [])
        item = (event.start_time, aggregates.timeline_member(event))
        if len(heap) < self.max_history:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)

    def _add_details(self, event: events.CallEvent) -> None:
        day = keys.bucket("d", event.start_time)
        key = keys.call_details(day)
        weight = 1.0 / event.sample_rate
        cost = event.estimated_cost_usd or 0.0
        floats = self._writes.floats[key]
        field = aggregates.detail_field
        model = event.model_name
        floats[field("model", model, "w")] += weight
        if event.retry_count:
            floats[field("model", model, "retries_w")] += weight * event.retry_count
        if not event.success:
            floats[field("model", model, "failed_cost_w")] += weight * cost
            floats[field("model", model, "failed_w")] += weight
        max_input = field("model", model, "max_input_tokens")
        self._writes.set_max(key, max_input, float(event.input_tokens))
        if event.prompt_hash:
            prompt = event.prompt_hash
            floats[field("prompt", prompt, "w")] += weight
            floats[field("prompt", prompt, "cost_w")] += weight * cost
            self._writes.ints[key][field("prompt", prompt, "n")] += 1
        self._writes.ttl[key] = self.retention.ttl("d")
