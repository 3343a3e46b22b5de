"""Exactly once under crashes: worker processes SIGKILLed at random moments while events flow."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from llmtap import events, keys
from llmtap.testing import Workload
from tests.consumer_helpers import day_totals, latency_events, stats, truth_totals, wait_for

EVENTS = 120_000
WORKER_ENV = {
    "LLMTAP_CLAIM_IDLE_S": "0.5",
    "LLMTAP_FLUSH_INTERVAL_S": "0.1",
    "LLMTAP_FLUSH_EVENTS": "3000",
    "LLMTAP_READ_COUNT": "5",
    "LLMTAP_BLOCK_MS": "100",
    "LLMTAP_HEARTBEAT_TTL_S": "3",
}


class Writer(threading.Thread):
    """Writes the workload while workers run, with some rollups written twice."""

    def __init__(self, url: str, workload: Workload) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.workload = workload
        self.duplicates = 0

    def run(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for n, fields in enumerate(self.workload.entries(EVENTS)):
            pipe.xadd(keys.EVENTS, fields)  # type: ignore[arg-type]
            if n % 40 == 0:
                rollup = events.encode(self.workload.rollup(self.workload.start + n / 10))
                pipe.xadd(keys.EVENTS, {keys.FIELD_EVENT: rollup})
                pipe.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch([])})
                pipe.xadd(keys.EVENTS, {keys.FIELD_EVENT: rollup})
                self.duplicates += 1
            if n % 20 == 0:
                pipe.execute()
        pipe.execute()
        self.client.close()


def spawn(url: str, engine: str, log: Path) -> subprocess.Popen[bytes]:
    """Start both workers (``llmtap up``) in a child process with short timings."""
    env = {**os.environ, **WORKER_ENV, "LLMTAP_WORKER_ENGINE": engine}
    command = [sys.executable, "-m", "llmtap.cli.worker", "up", "--url", url]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def is_reading(r: redis.Redis, pid: int) -> bool:
    """True when the child ``pid`` has a heartbeat in both groups (it reads the stream)."""
    marker = f"-{pid}-".encode()
    groups = (keys.GROUP_COST, keys.GROUP_LATENCY)
    return all(any(marker in key for key in r.scan_iter(keys.heartbeat_pattern(g))) for g in groups)


def entries_read(r: redis.Redis, group: str) -> int:
    """Return how many entries the group has been delivered (0 before it exists)."""
    if not r.exists(keys.EVENTS):
        return 0
    for info in r.xinfo_groups(keys.EVENTS):
        if info["name"].decode() == group:
            return int(info["entries-read"] or 0)
    return 0


def drained(r: redis.Redis, group: str) -> bool:
    """True when the group has read every entry and acknowledged it."""
    for info in r.xinfo_groups(keys.EVENTS):
        if info["name"].decode() == group:
            return info["pending"] == 0 and info["lag"] == 0
    return False


@pytest.mark.slow
def test_sigkilled_workers_neither_lose_nor_double_count(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Replicas killed with SIGKILL mid-stream and taken over via reclaim count exactly once."""
    rng = random.Random(20260101)
    workload = Workload(11, span_s=1200)
    writer = Writer(redis_url, workload)
    writer.start()
    log = tmp_path / "workers.log"
    steady = spawn(redis_url, "loop", log)
    for round_ in range(5):
        victim = spawn(redis_url, "faststream" if round_ % 2 else "loop", log)
        wait_for(lambda victim=victim: is_reading(r, victim.pid), 60)
        target = entries_read(r, keys.GROUP_COST) + rng.randint(20, 250)
        wait_for(lambda t=target: entries_read(r, keys.GROUP_COST) >= t or not writer.is_alive())
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        if round_ == 2:  # the steady replica dies once too; a fresh one takes its place
            steady.send_signal(signal.SIGKILL)
            steady.wait()
            steady = spawn(redis_url, "loop", log)
    writer.join()
    wait_for(lambda: drained(r, keys.GROUP_COST) and drained(r, keys.GROUP_LATENCY), 120)
    steady.send_signal(signal.SIGTERM)
    assert steady.wait(timeout=60) == 0, log.read_text()[-3000:]

    assert day_totals(r) == truth_totals(workload.truth)
    assert latency_events(r) == workload.truth.call_events
    cost = stats(r, keys.GROUP_COST)
    assert cost["processed"] == workload.truth.total_events + writer.duplicates
    assert cost["duplicates"] == writer.duplicates
    assert cost["reclaimed"] > 0
    assert stats(r, keys.GROUP_LATENCY)["processed"] == cost["processed"]
