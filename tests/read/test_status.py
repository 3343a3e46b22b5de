"""Profiling status: the producers' exact statistics and the pipeline's health."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import redis

from llmtap import keys
from llmtap.producers.profiler import Profiler
from llmtap.read import tools
from llmtap.read.status import pipeline_health
from llmtap.settings import Settings
from tests.consumer_helpers import burst
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


def _run_producer(redis_url: str, producer_id: str, sampling_rate: float) -> None:
    """One profiled call from a real profiler, flushed so its rollup is on the stream."""
    settings = Settings(sampling_rate=sampling_rate, producer_id=producer_id)
    profiler = Profiler(settings, redis_url=redis_url)
    profiler.start()
    try:
        profiler.wrap(lambda: {"model": "gpt-4o-mini"}, backend="openai", model="gpt-4o-mini")()
        assert profiler.flush()
    finally:
        profiler.close(timeout=2.0)


def test_status_shows_what_each_producer_runs_with_and_flags_disagreement(
    r: redis.Redis, redis_url: str
) -> None:
    """Producers at 0.5 and 0.1 are listed with their own rate; the status flags the
    difference, and the top-level rate is the configured one since they disagree."""
    _run_producer(redis_url, "p-half", 0.5)
    _run_producer(redis_url, "p-tenth", 0.1)
    burst(redis_url, ["cost"])
    got = tools.get_profiling_status(r, Settings(sampling_rate=0.1))
    by_id = {p["producer_id"]: p for p in got["producers"]}
    ran = {p: (row["sampling_rate"], row["level"], row["enabled"]) for p, row in by_id.items()}
    assert ran == {"p-half": (0.5, "standard", True), "p-tenth": (0.1, "standard", True)}
    assert by_id["p-half"]["total_calls"] == 1 and by_id["p-half"]["last_rollup_at"]
    assert got["settings_disagreements"] == [
        {"setting": "sampling_rate", "configured": 0.1,
         "producers": {"p-half": 0.5, "p-tenth": 0.1}}
    ]  # fmt: skip
    assert (got["sampling_rate"], got["settings_source"]) == (0.1, "configured")


def test_status_reports_the_rate_producers_run_with(r: redis.Redis, redis_url: str) -> None:
    """One producer at 0.5 while this process is configured for 0.1: status says 0.5, flags
    the configured value, and ``llmtap status`` (a real process) prints the disagreement."""
    _run_producer(redis_url, "p-half", 0.5)
    burst(redis_url, ["cost"])
    got = tools.get_profiling_status(r, Settings(sampling_rate=0.1))
    assert (got["sampling_rate"], got["settings_source"]) == (0.5, "producers")
    assert [d["setting"] for d in got["settings_disagreements"]] == ["sampling_rate"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CS_PROFILING")}
    done = subprocess.run(
        [sys.executable, "-m", "llmtap.cli.main", "status", "--url", redis_url],
        capture_output=True, text=True, timeout=60, check=False,
        env={**env, "COLUMNS": "200", "CS_PROFILING_SAMPLING_RATE": "0.1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        "llmtap status: producers disagree on sampling_rate: p-half 50.0% (configured: 10.0%)"
        in done.stdout
    )
