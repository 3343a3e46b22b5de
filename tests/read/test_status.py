"""Profiling status: the producers' exact statistics and the pipeline's health."""

from __future__ import annotations

import json

import redis

from llmtap import keys
from llmtap.read import tools
from llmtap.read.status import pipeline_health
from llmtap.settings import Settings
from tests.read.truth import Truth


def test_profiling_status_sums_the_producer_statistics(r: redis.Redis, truth: Truth) -> None:
    """total and profiled calls are the last rollup's statistics; the rate is their ratio."""
    last = max(truth.rollups, key=lambda e: e.seq).stats
    status = tools.get_profiling_status(r, Settings())
    stats = status["statistics"]
    assert (stats["total_calls"], stats["profiled_calls"]) == (
        last.total_calls,
        last.profiled_calls,
    )
    assert stats["profiling_rate"] == last.profiled_calls / last.total_calls
    assert stats["producers"] == 1
    assert status["enabled"] is True and status["level"] == "standard"
    assert status["sampling_rate"] == 0.1
    workers = status["pipeline"]["workers"]
    assert workers["cost"]["lag"] == 0 and workers["sessions"]["exists"]


def test_pipeline_health_lists_every_worker_group(r: redis.Redis) -> None:
    """Before any worker ran, each group is listed: stream groups with lag and pending, the
    others with their live consumers only."""
    r.set(keys.heartbeat(keys.GROUP_REPORTS, "host-1"), json.dumps({"ts": 1.0}))
    pipeline = pipeline_health(r)
    assert list(pipeline["workers"]) == list(keys.WORKER_GROUPS)
    for group in keys.EVENT_GROUPS:
        assert pipeline["workers"][group] == {"exists": False, "processed": 0, "lag": None,
                                              "pending": 0, "live_consumers": 0}  # fmt: skip
    assert pipeline["workers"][keys.GROUP_REPORTS] == {"live_consumers": 1}
    assert pipeline["workers_seen"] == 1
    assert (pipeline["stream_length"], pipeline["dlq_length"]) == (0, 0)
