"""The hook `llmtap demo` uses to show an alert firing and resolving at a local receiver."""

from __future__ import annotations

import asyncio
import time

import redis

from llmtap import events, keys
from llmtap import testing as alerts
from tests.alert_helpers import call


def test_demo_cycle_fires_and_resolves_at_the_local_receiver(
    r: redis.Redis, redis_url: str
) -> None:
    """One slow call in the stream gives a firing then a resolved message, both signed, and
    resolved on the real clock: no alert time is later than the moment the cycle returns."""
    now = time.time()
    ended = now - alerts.DEMO_QUIET_S - 1  # already quiet long enough: the cycle need not wait
    slow = call(start_time=ended - 12, end_time=ended, latency=12.0)
    fast = call(call_id="c-2", start_time=ended - 1, end_time=ended, latency=1.0)
    for event in (slow, fast):
        r.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(event)})
    with alerts.demo_receiver() as (rx, receiver):
        delivered = asyncio.run(alerts.demo_cycle(redis_url, alerts.demo_rules(10.0), receiver))
        lines = alerts.demo_lines(rx)
    after = time.time()
    assert delivered == 2
    assert [line.split()[0] for line in lines] == ["firing", "resolved"]
    assert "demo-slow-call [backend=openai, model=gpt-4o]" in lines[0]
    (state_key,) = r.keys(keys.alert_state("*"))
    state = {k.decode(): v.decode() for k, v in r.hgetall(state_key).items()}
    assert state["status"] == "resolved"
    assert now <= float(state["ends_at"]) <= after
