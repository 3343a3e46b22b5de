"""The main job: `llmtap demo` pushes traffic through the wrapper and the workers, exactly."""

from __future__ import annotations

import io

import redis

from llmtap.cli import demo
from llmtap.settings import Settings


def test_demo_counts_every_call_through_the_whole_pipeline(redis_url: str, r: redis.Redis) -> None:
    """A short demo run ends with rollups and worker aggregates equal to the calls it made,
    and with slow-call alerts fired and resolved at its local webhook receiver."""
    settings = Settings(redis_url=redis_url, rollup_interval_s=0.5, slow_call_s=0.1)
    out = io.StringIO()
    summary = demo.run(duration=2.0, threads=4, seed=3, settings=settings, out=out)
    assert summary["calls_made"] > 0
    assert summary["exact"] and summary["workers_exact"]
    assert summary["rollup_totals"]["calls"] == summary["calls_made"]
    assert summary["events_by_type"]["CallEvent"] > 0
    assert "error" in summary["call_events_by_reason"]
    text = out.getvalue()
    assert "rollups exact: yes" in text and "worker totals exact: yes" in text
    assert summary["aggregates"]["latency"], "the latency worker wrote sketches"
    statuses = {line.split()[0] for line in summary["alerts"]}
    assert statuses == {"firing", "resolved"}, summary["alerts"]
