"""Helpers for the producer tests: read the events stream back, wait for a profiler's call
events, and the filters of the warnings LiteLLM raises inside its own calls."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from llmtap import events, keys
from llmtap.events import CallEvent, RollupEvent
from llmtap.producers.profiler import Profiler

# Two warnings LiteLLM's own code raises inside its calls (third-party, nothing to fix here):
# pydantic warns about ReadOnly items in LiteLLM's TypedDicts when it first builds their schema,
# and LiteLLM's stream handler reads ``model_computed_fields`` on an instance.
LITELLM_WARNINGS = [
    pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_(computed_)?fields' attribute on the instance is deprecated"
    ),
]


def read_stream(client: redis.Redis) -> list[CallEvent | RollupEvent]:
    """Every event on the events stream, in order; any undecodable entry fails the test."""
    out: list[CallEvent | RollupEvent] = []
    for _id, fields in client.xrange(keys.EVENTS):
        for item in events.decode_entry(fields):
            assert not isinstance(item, events.EventError), item.reason
            out.append(item)
    return out


def call_events(p: Profiler, r: redis.Redis, calls: int, since: float = 0.0) -> list[CallEvent]:
    """The call events that started after ``since``, once there are ``calls`` of them.

    LiteLLM reports calls from its own threads and tasks, after the call returned: wait for
    them with a deadline, flushing the profiler each time.
    """
    deadline = time.monotonic() + 10.0
    while True:
        assert p.flush()
        found = [e for e in read_stream(r) if isinstance(e, CallEvent) and e.start_time >= since]
        if len(found) >= calls or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


async def acall_events(
    p: Profiler, r: redis.Redis, calls: int, since: float = 0.0
) -> list[CallEvent]:
    """:func:`call_events` for async tests: lets the loop run (LiteLLM's logging tasks)."""
    deadline = time.monotonic() + 10.0
    while True:
        found = call_events(p, r, 0, since)
        if len(found) >= calls or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.01)
