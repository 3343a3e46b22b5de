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
import json
from typing import Final

from llmtap import events, keys
from llmtap.consumers.runtime.commit import Writes
from llmtap.consumers.runtime.config import Retention

ROLLUP_METRICS: Final = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
    "cost_nanousd",
    "unpriced_calls",
)
_DAY: Final = keys.BUCKET_SECONDS["d"]


def timeline_member(call: events.CallEvent) -> str:
    """Return the timeline member describing one call event (compact, deterministic JSON)."""
    detail = {
        "call_id": call.call_id,
        "timestamp": call.start_time,
        "thread_name": call.thread_name,
        "backend": call.backend,
        "model": call.model_name,
        "cost": call.estimated_cost_usd,
        "latency": call.latency,
        "success": call.success,
        "error_type": call.error_type,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
    }
    return json.dumps(detail, separators=(",", ":"), sort_keys=True)


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
        ints[f"backend:{event.backend}"] += 1
        ints[f"model:{event.model_name}"] += 1
        ints[f"thread:{event.thread_name or '-'}"] += 1
        if not event.success:
            ints["failed_events"] += 1
        self._writes.floats[key]["latency_sum"] += event.latency
        self._writes.set_min(key, "first_seen", event.start_time)
        self._writes.set_max(key, "last_seen", event.end_time)
        self._writes.ttl[key] = keys.SESSION_TTL_S
        heap = self._timelines.setdefault(session_id, [])
        item = (event.start_time, timeline_member(event))
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
        model = f"model:{event.model_name}"
        floats[f"{model}|w"] += weight
        if event.retry_count:
            floats[f"{model}|retries_w"] += weight * event.retry_count
        if not event.success:
            floats[f"{model}|failed_cost_w"] += weight * cost
            floats[f"{model}|failed_w"] += weight
        self._writes.set_max(key, f"{model}|max_input_tokens", float(event.input_tokens))
        if event.prompt_hash:
            prompt = f"prompt:{event.prompt_hash}"
            floats[f"{prompt}|w"] += weight
            floats[f"{prompt}|cost_w"] += weight * cost
            self._writes.ints[key][f"{prompt}|n"] += 1
        self._writes.ttl[key] = self.retention.ttl("d")
