"""The sessions worker: exact session summaries, capped timelines, TTLs and call details."""

from __future__ import annotations

import json

import pytest
import redis

from llmtap import events, keys
from llmtap.aggregates import timeline_member
from llmtap.consumers.sessions import SessionsProcessor
from llmtap.testing import Workload
from tests.consumer_helpers import burst
from tests.factories import call_event, rollup_event, rollup_row

DAY0 = 1_767_225_600  # 2026-01-01T00:00Z


def call(i: int, session: str | None = "s-1", **fields: object) -> events.CallEvent:
    """A call event at DAY0 + i seconds."""
    defaults = {"call_id": f"c{i}", "start_time": DAY0 + i, "end_time": DAY0 + i + 1.5,
                "latency": 1.5, "session_id": session, "thread_name": "main",
                "estimated_cost_usd": 0.002}  # fmt: skip
    return call_event(**{**defaults, **fields})


def test_summary_counts_each_rollup_once_across_redelivery(r: redis.Redis, redis_url: str) -> None:
    """A rollup written twice (same producer and seq) counts once in the session summary."""
    rollup = rollup_event(
        [rollup_row(session="s-1", calls=7, errors=2, cost_nanousd=123)],
        window_start=DAY0, window_end=DAY0 + 5, stats=events.ProducerStats(total_calls=7),
    )  # fmt: skip
    for _ in range(2):
        r.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(rollup)})
    burst(redis_url, ["sessions"])
    summary = r.hgetall(keys.session("s-1"))
    assert summary[b"calls"] == b"7" and summary[b"errors"] == b"2"
    assert summary[b"cost_nanousd"] == b"123"
    assert float(summary[b"first_seen"]) == DAY0


def test_timeline_keeps_the_newest_events_up_to_the_cap() -> None:
    """With max_history 3, the timeline written is the three newest call events."""
    processor = SessionsProcessor(max_history=3)
    for i in (5, 1, 9, 3, 7):
        processor.add_call(call(i))
    top = processor.writes().top[keys.session_timeline("s-1")]
    assert top[0] == 3
    assert sorted(json.loads(m)["call_id"] for m in top[1]) == ["c5", "c7", "c9"]


def test_timeline_is_capped_in_redis_across_commits(
    r: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across many commits the stored timeline never exceeds CS_PROFILING_MAX_HISTORY; the
    newest events are kept and the keys expire."""
    monkeypatch.setenv("CS_PROFILING_MAX_HISTORY", "10")
    for i in range(30):
        r.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(call(i))})
    burst(redis_url, ["sessions"], flush_events=4, read_count=3)
    members = r.zrange(keys.session_timeline("s-1"), 0, -1)
    assert [json.loads(m)["call_id"] for m in members] == [f"c{i}" for i in range(20, 30)]
    assert 0 < r.ttl(keys.session_timeline("s-1")) <= keys.SESSION_TTL_S
    assert 0 < r.ttl(keys.session("s-1")) <= keys.SESSION_TTL_S
    assert r.hget(keys.session("s-1"), "events") == b"30"


def test_events_without_a_session_only_feed_the_call_details(r: redis.Redis) -> None:
    """A call without a session writes no session key but counts in the day's details."""
    processor = SessionsProcessor()
    processor.add_call(call(1, session=None, success=False, retry_count=2, sample_rate=0.5,
                            prompt_hash="h", input_tokens=900))  # fmt: skip
    writes = processor.writes()
    assert not any(k.startswith(keys.SESSION_PREFIX + ":") for k in writes.ints)
    details = keys.call_details("20260101")
    assert writes.floats[details]["model:gpt-4o|retries_w"] == 4.0
    assert writes.floats[details]["model:gpt-4o|failed_cost_w"] == 0.004
    assert writes.floats[details]["prompt:h|w"] == 2.0
    assert writes.maxs[details]["model:gpt-4o|max_input_tokens"] == 900.0


def test_synthetic_sessions_match_the_rollups(r: redis.Redis, redis_url: str) -> None:
    """Per session, calls and cost in the summaries equal the sums of the rollup rows."""
    workload = Workload(3, start=DAY0, span_s=300)
    expected: dict[str, list[int]] = {}
    for fields in workload.entries(3_000):
        r.xadd(keys.EVENTS, fields)  # type: ignore[arg-type]
        for item in events.decode_entry(fields):
            if isinstance(item, events.RollupEvent):
                for row in item.rows:
                    if row.session:
                        acc = expected.setdefault(row.session, [0, 0])
                        acc[0] += row.calls
                        acc[1] += row.cost_nanousd
    burst(redis_url, ["sessions"])
    for session, (calls, cost) in expected.items():
        got = r.hmget(keys.session(session), ["calls", "cost_nanousd"])
        assert [int(v or 0) for v in got] == [calls, cost]


def test_timeline_member_is_deterministic() -> None:
    """The same event always gives the same member, so a redelivered event is not doubled."""
    assert timeline_member(call(1)) == timeline_member(call(1))
