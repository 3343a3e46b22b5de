"""Factories of the test events: one call event, one rollup (and its rows), sensible defaults.

Every field not given takes the default below; tests that need other defaults wrap a factory in
a one-line helper of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmtap import events

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def call_event(**overrides: Any) -> events.CallEvent:
    """A valid, sampled, successful openai/gpt-4o call event at T0 lasting 1 s, no cost.

    Without an ``end_time`` the call ends ``latency`` seconds after its ``start_time``.
    """
    values: dict[str, Any] = {
        "v": 1,
        "call_id": "c-1",
        "producer_id": "p",
        "backend": "openai",
        "model_name": "gpt-4o",
        "start_time": T0,
        "latency": 1.0,
        "success": True,
        "sample_rate": 1.0,
        "reason": "sampled",
    }
    values.update(overrides)
    values.setdefault("end_time", values["start_time"] + values["latency"])
    return events.CallEvent(**values)


def rollup_row(**overrides: Any) -> events.RollupRow:
    """A rollup row of openai/gpt-4o with every count zero but those given."""
    values: dict[str, Any] = {"backend": "openai", "model": "gpt-4o"}
    values.update(overrides)
    return events.RollupRow(**values)


def rollup_event(rows: Sequence[events.RollupRow] = (), **overrides: Any) -> events.RollupEvent:
    """A rollup of producer ``p`` (seq 1) for the 5 s window from T0, with empty stats."""
    values: dict[str, Any] = {
        "v": 1,
        "producer_id": "p",
        "seq": 1,
        "window_start": T0,
        "window_end": T0 + 5.0,
        "rows": list(rows),
        "stats": events.ProducerStats(),
    }
    values.update(overrides)
    return events.RollupEvent(**values)
