"""The consumer contract's scenarios, shared by the built-in workers' tests and the plugins':
a writer that streams a workload while worker processes are SIGKILLed, and garbage entries of
every kind."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec
import redis

from llmtap import events, keys
from llmtap.testing import Workload
from tests.consumer_helpers import pack, wait_for

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

    def __init__(self, url: str, workload: Workload, n_events: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.workload = workload
        self.n_events = n_events
        self.duplicates = 0

    def run(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for n, fields in enumerate(self.workload.entries(self.n_events)):
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


def spawn(
    url: str,
    engine: str,
    log: Path,
    command: Sequence[str] = ("up",),
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``llmtap <command>`` (default: every worker) in a child with short timings
    (and ``env`` on top)."""
    full = {**os.environ, **WORKER_ENV, "LLMTAP_WORKER_ENGINE": engine, **(env or {})}
    argv = [sys.executable, "-m", "llmtap.cli.worker", *command, "--url", url]
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=full, stdout=out, stderr=subprocess.STDOUT)


def is_reading(r: redis.Redis, pid: int, groups: Sequence[str]) -> bool:
    """True when the child ``pid`` has a heartbeat in every group (it reads the stream)."""
    marker = f"-{pid}-".encode()
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


def crash_run(
    r: redis.Redis,
    url: str,
    log: Path,
    workload: Workload,
    *,
    n_events: int,
    groups: Sequence[str],
    command: Sequence[str] = ("up",),
) -> Writer:
    """Stream ``workload`` while replicas of ``command`` are SIGKILLed mid-stream (five victims,
    alternating engines, and the steady replica once); wait until every group in ``groups``
    drained, stop the last replica with SIGTERM (it must exit 0) and return the writer."""
    rng = random.Random(20260101)
    writer = Writer(url, workload, n_events)
    writer.start()
    steady = spawn(url, "loop", log, command)
    for round_ in range(5):
        victim = spawn(url, "faststream" if round_ % 2 else "loop", log, command)
        wait_for(lambda victim=victim: is_reading(r, victim.pid, groups), 60)
        target = entries_read(r, groups[0]) + rng.randint(20, 250)
        wait_for(lambda t=target: entries_read(r, groups[0]) >= t or not writer.is_alive())
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        if round_ == 2:  # the steady replica dies once too; a fresh one takes its place
            steady.send_signal(signal.SIGKILL)
            steady.wait()
            steady = spawn(url, "loop", log, command)
    writer.join()
    wait_for(lambda: all(drained(r, g) for g in groups), 120)
    steady.send_signal(signal.SIGTERM)
    assert steady.wait(timeout=60) == 0, log.read_text()[-3000:]
    return writer


def garbage() -> list[dict[bytes, bytes]]:
    """One entry per kind of bad input; each holds exactly one bad event (the last holds two
    good calls beside it)."""
    good = events.encode(Workload(99).call(1_767_225_600.0))
    call: dict[str, object] = msgspec.msgpack.decode(good)
    bad_maps: list[dict[str, object]] = [
        {**call, "input_tokens": "ten"},
        {k: v for k, v in call.items() if k != "backend"},
        {**call, "latency": math.nan},
        {**call, "output_tokens": -5},
        {**call, "call_id": "x" * 100_000},
        {**call, "v": 2},
        {**call, "t": "bogus"},
        {**call, "sample_rate": 0.0},
    ]
    entries = [{keys.FIELD_EVENT: pack(m)} for m in bad_maps]
    entries += [
        {keys.FIELD_EVENT: b"\xc1\xff not msgpack"},
        {b"x": b"no e or b field"},
        {keys.FIELD_BATCH: b"\x93\x01"},  # truncated array
        {keys.FIELD_BATCH: pack([call, bad_maps[0], call])},  # two good calls, one bad
    ]
    return entries
