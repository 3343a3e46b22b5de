"""The ``llmtap worker`` commands: health exit codes, stats, and a clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from llmtap import keys
from llmtap.cli import worker as commands
from llmtap.consumers.registry import WORKERS
from llmtap.testing import Workload
from tests.consumer_helpers import burst, stats, wait_for


def health(url: str, name: str = "cost") -> int:
    """Run ``llmtap worker health NAME`` in-process; return its exit code."""
    return commands.main(["worker", "health", name, "--url", url])


def spawn_worker(url: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """Start ``llmtap worker cost`` in a child process."""
    command = [sys.executable, "-m", "llmtap.cli.worker", "worker", "cost", "--url", url]
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


def test_health_fails_without_a_heartbeat(
    r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no live consumer the check exits 1 and says why in one line."""
    assert health(redis_url) == 1
    out = capsys.readouterr().out.strip()
    assert out.startswith("unhealthy: no heartbeat for group cost") and "\n" not in out


def test_health_fails_when_redis_is_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    """An unreachable server makes the check exit 1 with one line naming it and the reason."""
    assert health("redis://127.0.0.1:1/0") == 1
    out = capsys.readouterr().out
    assert out.startswith("unhealthy: cannot use Redis at redis://127.0.0.1:1/0: unreachable")
    assert out.count("\n") == 1


def test_health_follows_a_running_worker_and_sigterm_commits_the_batch_in_hand(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Health is 0 while a worker runs; SIGTERM commits what it read, then health is 1."""
    Workload(21).write(r, 30_000)
    log = tmp_path / "worker.log"
    worker = spawn_worker(
        redis_url,
        log,
        LLMTAP_READ_COUNT="2",
        LLMTAP_FLUSH_INTERVAL_S="60",
        LLMTAP_FLUSH_EVENTS="10000000",
    )
    wait_for(lambda: health(redis_url) == 0, 60)
    wait_for(lambda: r.xinfo_groups(keys.EVENTS)[0]["entries-read"] >= 20, 60)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, log.read_text()[-2000:]
    group = r.xinfo_groups(keys.EVENTS)[0]
    assert group["pending"] == 0
    assert stats(r, keys.GROUP_COST)["entries"] == group["entries-read"]
    assert health(redis_url) == 1


def test_stats_json_reports_counters_lag_and_dlq(
    r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``worker stats --json`` prints every group's counters, lag and the DLQ length."""
    Workload(22).write(r, 1_000)
    r.xadd(keys.EVENTS, {keys.FIELD_EVENT: b"garbage"})
    burst(redis_url)
    capsys.readouterr()
    assert commands.main(["worker", "stats", "--json", "--url", redis_url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dlq_length"] == 2
    by_group = {group["group"]: group for group in report["groups"]}
    assert by_group["cost"]["processed"] == by_group["latency"]["processed"] == 1_000
    assert by_group["cost"]["lag"] == 0 and by_group["cost"]["dlq"] == 1


def test_stats_table_lists_every_worker(
    r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``worker stats`` prints one row per registered worker and the stream lengths."""
    assert commands.main(["worker", "stats", "--url", redis_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "group"
    assert [line.split()[0] for line in lines[1:3]] == ["cost", "latency"]
    assert lines[-1].startswith("stream length 0")


def test_up_without_a_url_runs_every_worker_on_an_embedded_valkey(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``llmtap up --burst`` with LLMTAP_REDIS_URL unset starts a Valkey, prints its URL and
    the export line (``--port 0``: any free port, so the test never takes 6379). Without
    LLMTAP_OTLP_ENDPOINT, every worker but the OTLP exporter runs."""
    monkeypatch.delenv("LLMTAP_REDIS_URL", raising=False)
    monkeypatch.delenv("LLMTAP_OTLP_ENDPOINT", raising=False)
    assert commands.main(["up", "--burst", "--port", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    running = [name for name in WORKERS if name != "otel"]
    assert lines[0].startswith(f"llmtap: {', '.join(running)} on redis://127.0.0.1:")
    url = lines[0].rpartition(" on ")[2]
    assert lines[2] == f"export LLMTAP_REDIS_URL={url}"
    assert lines[3:] == [f"llmtap: {name}: 0 events, 0 to DLQ" for name in running]


def test_worker_prints_the_url_without_its_password(
    r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The URL a worker prints hides the password."""
    secret_url = redis_url.replace("redis://", "redis://default:s3cret@")
    r.config_set("requirepass", "s3cret")
    try:
        assert commands.main(["worker", "cost", "--burst", "--url", secret_url]) == 0
    finally:
        redis.Redis.from_url(secret_url).config_set("requirepass", "")
    out = capsys.readouterr().out
    assert "s3cret" not in out and "default:***@" in out
