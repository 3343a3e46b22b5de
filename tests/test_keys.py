"""Key names: the worker groups the read side lists agree with the workers that exist."""

from __future__ import annotations

from llmtap import keys
from llmtap.consumers.registry import WORKERS


def test_worker_groups_are_the_registry_in_order() -> None:
    """EVENT_GROUPS are the registry's stream workers and OFF_STREAM_GROUPS the others."""
    on_stream = [spec.group for spec in WORKERS.values() if spec.runner is None]
    off_stream = [spec.group for spec in WORKERS.values() if spec.runner is not None]
    assert list(keys.EVENT_GROUPS) == on_stream
    assert list(keys.OFF_STREAM_GROUPS) == off_stream
    assert list(keys.WORKER_GROUPS) == [spec.group for spec in WORKERS.values()]
    assert [spec.name for spec in WORKERS.values()] == [spec.group for spec in WORKERS.values()]


def test_kind_is_the_second_part_of_a_key_name() -> None:
    """A reset counts keys by kind: the part after the prefix."""
    assert keys.kind(keys.cost("h", "20260131T15")) == "cost"
    assert keys.kind(keys.heartbeat("cost", "c")) == "heartbeat"
    assert keys.kind("plain") == "plain"
