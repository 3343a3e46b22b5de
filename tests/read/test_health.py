"""Worker health read from Redis: heartbeats decoded with the heartbeat document's codec."""

from __future__ import annotations

import json

import redis

from llmtap import keys
from llmtap.notify import Heartbeat, encode_heartbeat
from llmtap.read import health


def test_heartbeats_of_every_writer_generation_are_read(r: redis.Redis) -> None:
    """A versioned heartbeat and an old JSON one without ``v`` both count, with their time."""
    r.set(keys.heartbeat("cost", "new"), encode_heartbeat(Heartbeat(ts=100.5, pid=7)))
    r.set(keys.heartbeat("cost", "old"), json.dumps({"ts": 99.25, "pid": 1, "processed": 3}))
    assert sorted(health.heartbeats(r, "cost")) == [("new", 100.5), ("old", 99.25)]


def test_a_value_that_is_not_a_heartbeat_is_skipped(r: redis.Redis) -> None:
    """Garbage or a document without a time under a heartbeat key is not a live consumer."""
    r.set(keys.heartbeat("cost", "junk"), b"not json")
    r.set(keys.heartbeat("cost", "no-ts"), json.dumps({"pid": 1}))
    r.set(keys.heartbeat("cost", "ok"), json.dumps({"ts": 1.0}))
    assert health.heartbeats(r, "cost") == [("ok", 1.0)]
    assert health.heartbeats(r, "latency") == []
