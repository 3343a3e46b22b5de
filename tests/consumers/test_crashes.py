"""Exactly once under crashes: worker processes SIGKILLed at random moments while events flow."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from llmtap import keys
from llmtap.testing import Workload
from tests.consumer_helpers import day_totals, latency_events, stats, truth_totals
from tests.contract_helpers import crash_run

EVENTS = 120_000


@pytest.mark.slow
def test_sigkilled_workers_neither_lose_nor_double_count(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Replicas killed with SIGKILL mid-stream and taken over via reclaim count exactly once."""
    workload = Workload(11, span_s=1200)
    groups = (keys.GROUP_COST, keys.GROUP_LATENCY)
    writer = crash_run(
        r, redis_url, tmp_path / "workers.log", workload, n_events=EVENTS, groups=groups
    )

    assert day_totals(r) == truth_totals(workload.truth)
    assert latency_events(r) == workload.truth.call_events
    cost = stats(r, keys.GROUP_COST)
    assert cost["processed"] == workload.truth.total_events + writer.duplicates
    assert cost["duplicates"] == writer.duplicates
    assert cost["reclaimed"] > 0
    assert stats(r, keys.GROUP_LATENCY)["processed"] == cost["processed"]
