"""Workers keep working: a stream deleted under a running worker, Redis down or refusing the
password at start, and bad settings, each against real worker processes and a real Valkey."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import redis

from llmtap import keys
from llmtap.analyzers.rules import Rule
from llmtap.embedded import EmbeddedValkey, _ephemeral_port
from llmtap.testing import LocalReceiver, Workload
from tests.alert_helpers import T0, active
from tests.consumer_helpers import day_totals, stats, truth_totals, wait_for

FAST = {
    "LLMTAP_FLUSH_INTERVAL_S": "0.1",
    "LLMTAP_BLOCK_MS": "100",
    "LLMTAP_CLAIM_IDLE_S": "1",
    "LLMTAP_HEARTBEAT_TTL_S": "3",
}
WORKERS = ("cost", "latency", "sessions", "alerts", "notifier", "reports")
RULE = Rule("slow", "latency_above", 2.0, group_by=("model",))


def spawn(
    args: list[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``llmtap ARGS`` in a child process, its output going to ``log``."""
    full = {**os.environ, **FAST, **(env or {})}
    command = [sys.executable, "-m", "llmtap.cli.main", *args]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=full, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Child processes a test starts; any still running at the end are killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
            child.wait()


def stop(child: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM the child and check that it ends cleanly."""
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 0, log.read_text()[-3000:]


def counted(r: redis.Redis, group: str) -> int:
    """Return the events the group has committed (its ``processed`` counter)."""
    return stats(r, group).get("processed", 0)


# --- item 3: a stream or group deleted under a running worker ------------------------------


@pytest.mark.parametrize("engine", ["loop", "faststream"])
def test_up_recreates_groups_when_the_events_stream_is_deleted(
    r: redis.Redis, redis_url: str, tmp_path: Path, engine: str, processes: list
) -> None:
    """``DEL llmtap:events`` under a running ``llmtap up``: every group is recreated at 0
    (counted as ``recreated``), and events written afterwards are still counted exactly."""
    log = tmp_path / "up.log"
    up = spawn(["up", "--url", redis_url, "--engine", engine], log)
    processes.append(up)
    workload = Workload(31)
    workload.write(r, 2_000)
    groups = (keys.GROUP_COST, keys.GROUP_LATENCY, keys.GROUP_SESSIONS, keys.GROUP_ALERTS)
    wait_for(lambda: all(counted(r, g) == 2_000 for g in groups), 90)

    r.delete(keys.EVENTS)
    workload.write(r, 1_500)
    wait_for(lambda: all(counted(r, g) == 3_500 for g in groups) or up.poll() is not None, 90)

    assert up.poll() is None, log.read_text()[-3000:]
    assert all(stats(r, g).get("recreated") == 1 for g in groups), log.read_text()[-3000:]
    assert day_totals(r) == truth_totals(workload.truth)
    assert "recreated at id 0" in log.read_text()
    stop(up, log)


def test_notifier_recreates_its_group_when_the_outbox_is_deleted(
    r: redis.Redis, redis_url: str, tmp_path: Path, processes: list
) -> None:
    """``DEL llmtap:notify`` under a running notifier: its group is recreated (counted), and
    notifications enqueued afterwards are delivered."""
    log = tmp_path / "notifier.log"
    with LocalReceiver() as receiver:
        env = {"LLMTAP_ALERT_WEBHOOK_URL": receiver.url}
        notifier = spawn(["worker", "notifier", "--url", redis_url], log, env)
        processes.append(notifier)
        active(redis_url, RULE, {"model": "before"}, T0)
        wait_for(lambda: len(receiver.accepted) == 1, 60)

        r.delete(keys.NOTIFY)
        active(redis_url, RULE, {"model": "after"}, T0 + 1)
        wait_for(lambda: len(receiver.accepted) == 2 or notifier.poll() is not None, 60)

        assert notifier.poll() is None, log.read_text()[-3000:]
        assert stats(r, keys.GROUP_NOTIFIER).get("recreated") == 1
        assert receiver.accepted[1].json()["alerts"][0]["labels"]["model"] == "after"
        stop(notifier, log)
