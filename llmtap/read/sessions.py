"""One session: its exact summary (from rollups, or its call events before the first rollup),
its timeline of call events and its backend, model and thread usage.

A session's calls may come from producers on several shards: each shard holds the part its
producers sent, and :mod:`llmtap.read.shards` merges them (counts summed, first/last seen by
their extremes, timelines united in time order).
"""

from __future__ import annotations

from typing import Any

import redis

from llmtap import aggregates, keys
from llmtap.read import shards
from llmtap.read.window import fraction, iso


def session_analysis(
    client: redis.Redis, session_id: str, limit: int | None = None
) -> dict[str, Any]:
    """Return ``get_session_profiling_analysis``'s structure for one session, merged over
    every shard its producers wrote it to (its timeline: the ``limit`` newest events of all of
    them; without ``limit``, every event each shard's timeline keeps)."""
    raw = shards.hgetall_many(client, [keys.session(session_id)])[0]
    fields = aggregates.decode_session(raw)
    members = shards.zrange_many(client, [keys.session_timeline(session_id)], limit)[0]
    timeline = [aggregates.decode_member(m) for m in members]
    return {
        "session_id": session_id,
        "found": bool(raw or timeline),
        "summary": summary(fields),
        "timeline": timeline,
        "backend_usage": fields.usage["backend"],
        "model_usage": fields.usage["model"],
        "thread_usage": fields.usage["thread"],
    }


def summary(fields: aggregates.SessionFields) -> dict[str, Any]:
    """Exact counts from rollups; before the first rollup arrives, the call events' counts
    (``exact`` says which)."""
    counts, events = fields.counts, fields.events
    calls, errors = counts["calls"], counts["errors"]
    exact = calls > 0 or events == 0
    if not exact:
        calls, errors = events, fields.failed_events
    first, last = fields.first_seen, fields.last_seen
    return {
        "total_calls": calls,
        "errors": errors,
        "total_cost_usd": aggregates.usd(counts["cost_nanousd"]),
        "success_rate": fraction(calls - errors, calls),
        "exact": exact,
        "input_tokens": counts["input_tokens"],
        "output_tokens": counts["output_tokens"],
        "profiled_calls": events,
        "avg_latency": fields.latency_sum / events if events else None,
        "first_seen": iso(first) if first is not None else None,
        "last_seen": iso(last) if last is not None else None,
        "duration_s": last - first if first is not None and last is not None else None,
    }
