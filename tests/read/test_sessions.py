"""One session's analysis: exact summary, timeline, and the counts before the first rollup."""

from __future__ import annotations

from collections import Counter

import pytest
import redis

from llmtap import events, keys
from llmtap.read import tools
from tests.consumer_helpers import burst
from tests.factories import call_event
from tests.read.truth import DAY0, Truth


def test_session_analysis_is_exact_and_keeps_the_timeline(r: redis.Redis, truth: Truth) -> None:
    """A session's calls, cost and success rate come from the rollups; its timeline holds
    every call event of the session, oldest first."""
    got = tools.get_session_profiling_analysis(r, "s-2")
    calls = truth.sum_rows("calls", session="s-2")
    errors = truth.sum_rows("errors", session="s-2")
    summary = got["summary"]
    assert got["found"] and summary["total_calls"] == calls
    assert summary["total_cost_usd"] == truth.cost_by("session")["s-2"] / 1e9
    assert summary["success_rate"] == pytest.approx((calls - errors) / calls)
    mine = [c for c in truth.calls if c.session_id == "s-2"]
    assert [e["call_id"] for e in got["timeline"]] == [
        c.call_id for c in sorted(mine, key=lambda c: (c.start_time, c.call_id))
    ]
    assert got["backend_usage"] == dict(Counter(c.backend for c in mine))
    assert set(got["timeline"][0]) >= {"timestamp", "thread_name", "backend", "model", "cost",
                                       "latency"}  # fmt: skip


def test_unknown_session_is_not_found(r: redis.Redis) -> None:
    """A session nobody saw answers found=false with zero totals."""
    got = tools.get_session_profiling_analysis(r, "nobody")
    assert not got["found"] and got["summary"]["total_calls"] == 0 and got["timeline"] == []


def test_session_before_its_first_rollup_counts_its_call_events(
    r: redis.Redis, redis_url: str
) -> None:
    """With call events but no rollup yet, the summary counts the events and says it is not
    exact."""
    calls = [
        call_event(call_id=f"c{i}", start_time=DAY0 + i, end_time=DAY0 + i + 1,
                   success=i != 0, session_id="early")
        for i in range(4)
    ]  # fmt: skip
    r.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch(calls)})
    burst(redis_url, ["sessions"])
    summary = tools.get_session_profiling_analysis(r, "early")["summary"]
    assert (summary["total_calls"], summary["errors"], summary["exact"]) == (4, 1, False)
    assert summary["success_rate"] == 0.75
