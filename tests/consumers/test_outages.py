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
from llmtap.consumers.runtime.context import WorkerContext, validate
from llmtap.embedded import EmbeddedValkey, _ephemeral_port
from llmtap.settings import SettingsError
from llmtap.testing import LocalReceiver, Workload
from tests.alert_helpers import T0, active
from tests.consumer_helpers import day_totals, stats, truth_totals, wait_for

FAST = {
    "LLMTAP_FLUSH_INTERVAL_S": "0.1",
    "LLMTAP_BLOCK_MS": "100",
    "LLMTAP_CLAIM_IDLE_S": "1",
    "LLMTAP_HEARTBEAT_TTL_S": "3",
}
LLMTAP = str(Path(sys.executable).with_name("llmtap"))  # the installed entry point
WORKERS = ("cost", "latency", "sessions", "alerts", "notifier", "reports")
RULE = Rule("slow", "latency_above", 2.0, group_by=("model",))


def spawn(
    args: list[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``llmtap ARGS`` in a child process, its output going to ``log``."""
    full = {**os.environ, **FAST, **(env or {})}
    command = [LLMTAP, *args]
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
    """``DEL llmtap:{s0}:events`` under a running ``llmtap up``: every group is recreated at 0
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


# --- item 4: Redis unreachable, or refusing the password, at start ---------------------------


def health(url: str, name: str = "cost") -> subprocess.CompletedProcess[str]:
    """Run ``llmtap worker health NAME --url URL``."""
    command = [LLMTAP, "worker", "health", name, "--url", url]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_worker_started_before_redis_waits_then_serves(tmp_path: Path, processes: list) -> None:
    """A worker started where nothing listens retries (logging, health unhealthy without a
    traceback) and counts events once a Valkey starts on that port."""
    port = _ephemeral_port()
    url = f"redis://127.0.0.1:{port}/0"
    log = tmp_path / "cost.log"
    worker = spawn(["worker", "cost", "--url", url], log)
    processes.append(worker)
    wait_for(lambda: "unavailable" in log.read_text() or worker.poll() is not None, 60)
    down = health(url)
    assert worker.poll() is None, log.read_text()[-3000:]
    assert down.returncode == 1 and "Traceback" not in down.stdout + down.stderr
    assert len((down.stdout + down.stderr).strip().splitlines()) == 1

    with EmbeddedValkey(port=port) as server:
        client = redis.Redis.from_url(server.url)
        workload = Workload(32)
        workload.write(client, 1_000)
        wait_for(lambda: counted(client, keys.GROUP_COST) == 1_000, 60)
        assert day_totals(client) == truth_totals(workload.truth)
        wait_for(lambda: health(url).returncode == 0, 60)
        stop(worker, log)
        client.close()
    assert "Traceback" not in log.read_text()


def test_worker_refused_its_password_waits_then_serves(tmp_path: Path, processes: list) -> None:
    """A worker whose password Valkey rejects retries with the password redacted in every log
    line, and serves once the server accepts that password."""
    with EmbeddedValkey() as server:
        redis.Redis(port=server.port).config_set("requirepass", "right-one")
        admin = redis.Redis(port=server.port, password="right-one")
        url = f"redis://:wrong-one@127.0.0.1:{server.port}/0"
        log = tmp_path / "cost.log"
        worker = spawn(["worker", "cost", "--url", url], log)
        processes.append(worker)
        wait_for(lambda: "unavailable" in log.read_text() or worker.poll() is not None, 60)
        assert worker.poll() is None, log.read_text()[-3000:]
        assert health(url).returncode == 1

        admin.config_set("requirepass", "wrong-one")
        admin = redis.Redis(port=server.port, password="wrong-one")
        workload = Workload(33)
        workload.write(admin, 500)
        wait_for(lambda: counted(admin, keys.GROUP_COST) == 500, 60)
        stop(worker, log)
        admin.close()
    text = log.read_text()
    assert "wrong-one" not in text and "Traceback" not in text
    assert "redis://:***@127.0.0.1" in text


# --- item 5: one validation at start, for every worker --------------------------------------


def run_worker(name: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``llmtap worker NAME`` against a port where nothing listens, with ``env`` added."""
    command = [LLMTAP, "worker", name]
    command += ["--url", f"redis://127.0.0.1:{_ephemeral_port()}/0"]
    full = {**os.environ, **env}
    return subprocess.run(
        command, env=full, capture_output=True, text=True, timeout=60, check=False
    )


def bad_settings(tmp_path: Path) -> dict[str, dict[str, str]]:
    """One bad environment per variable a worker reads, by the variable its error names."""
    prices = tmp_path / "prices.json"
    prices.write_text("{not json")
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: 5\n")
    return {
        "CS_PROFILING_LEVEL": {"CS_PROFILING_LEVEL": "verbose"},
        "LLMTAP_PRICES_FILE": {"LLMTAP_PRICES_FILE": str(prices)},
        "LLMTAP_ALERT_RULES": {"LLMTAP_ALERT_RULES": str(rules)},
        "LLMTAP_ALERT_TICK_S": {"LLMTAP_ALERT_TICK_S": "0"},
        "LLMTAP_REPORT_FORMATS": {"LLMTAP_REPORT_FORMATS": "docx"},
        "LLMTAP_SLACK_CHANNEL": {"LLMTAP_SLACK_BOT_TOKEN": "xoxb-1"},
        "LLMTAP_RETENTION_DAY_S": {"LLMTAP_RETENTION_DAY_S": "5"},
    }


def assert_refused(done: subprocess.CompletedProcess[str], variable: str) -> None:
    """Exit 2 with one line on stderr naming ``variable``, and no traceback."""
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("name", WORKERS)
@pytest.mark.parametrize("variable", ["CS_PROFILING_LEVEL", "LLMTAP_PRICES_FILE"])
def test_every_worker_refuses_a_bad_setting_at_start(
    name: str, variable: str, tmp_path: Path
) -> None:
    """``llmtap worker NAME`` with a bad profiling level or prices file exits 2 with one line
    naming the variable, before it tries to reach Redis."""
    assert_refused(run_worker(name, bad_settings(tmp_path)[variable]), variable)


@pytest.mark.parametrize(
    "variable",
    [
        "LLMTAP_ALERT_RULES",
        "LLMTAP_ALERT_TICK_S",
        "LLMTAP_REPORT_FORMATS",
        "LLMTAP_SLACK_CHANNEL",
        "LLMTAP_RETENTION_DAY_S",
    ],
)
def test_a_worker_refuses_another_workers_bad_setting(variable: str, tmp_path: Path) -> None:
    """The cost worker refuses the alerts, notifier and reports workers' bad settings too, so
    services sharing one environment all stop at start, the same way."""
    assert_refused(run_worker("cost", bad_settings(tmp_path)[variable]), variable)


def test_worker_context_validates_every_variable(tmp_path: Path) -> None:
    """Building the WorkerContext raises SettingsError naming each bad variable."""
    for variable, env in bad_settings(tmp_path).items():
        with pytest.raises(SettingsError, match=variable):
            WorkerContext.from_environ("redis://127.0.0.1:1/0", env)


def test_validate_checks_settings_and_prices_file(tmp_path: Path) -> None:
    """``validate`` (for the read commands) returns the settings and refuses a bad prices
    file or level, naming the variable."""
    assert validate({}).level == "standard"
    for variable in ("CS_PROFILING_LEVEL", "LLMTAP_PRICES_FILE"):
        with pytest.raises(SettingsError, match=variable):
            validate(bad_settings(tmp_path)[variable])


# --- Redis restarted under the workers that do not read the events stream -----------------


def test_notifier_and_reports_ride_through_a_redis_restart(tmp_path: Path, processes: list) -> None:
    """Valkey stopped and started again on the same port under a running notifier and reports
    worker: both keep running (one line per outage, no traceback), and a notification enqueued
    after the restart is delivered."""
    port = _ephemeral_port()
    url = f"redis://127.0.0.1:{port}/0"
    with LocalReceiver() as receiver:
        env = {"LLMTAP_ALERT_WEBHOOK_URL": receiver.url}
        logs = {name: tmp_path / f"{name}.log" for name in ("notifier", "reports")}
        with EmbeddedValkey(port=port):
            children = {
                name: spawn(["worker", name, "--url", url], log, env) for name, log in logs.items()
            }
            processes.extend(children.values())
            active(url, RULE, {"model": "before"}, T0)
            wait_for(lambda: len(receiver.accepted) == 1, 60)
        # Down: give both a moment to notice before the server comes back.
        wait_for(lambda: all("unavailable" in log.read_text() for log in logs.values()), 60)
        with EmbeddedValkey(port=port):
            active(url, RULE, {"model": "after"}, T0 + 1)
            notifier = children["notifier"]
            wait_for(lambda: len(receiver.accepted) == 2 or notifier.poll() is not None, 90)
            for name, child in children.items():
                assert child.poll() is None, logs[name].read_text()[-3000:]
            assert receiver.accepted[1].json()["alerts"][0]["labels"]["model"] == "after"
            for name, child in children.items():
                stop(child, logs[name])
    for log in logs.values():
        assert "Traceback" not in log.read_text()
