"""The ``llmtap report`` command and the read commands: times, files, status, reset, tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from llmtap import cli
from llmtap.cli import report as report_cli
from llmtap.testing import Workload

DAY0 = 1_767_225_600  # 2026-01-01T00:00Z, a Thursday
DAY = 86_400


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("24h", DAY0 - DAY),
        ("90m", DAY0 - 5400),
        ("2w", DAY0 - 14 * DAY),
        ("2025-12-31", DAY0 - DAY),
        ("2025-12-31T12:00:00+00:00", DAY0 - DAY / 2),
        (str(DAY0 - 10), DAY0 - 10),
    ],
)
def test_cli_times(raw: str, expected: float) -> None:
    """--since takes a duration back from now, an ISO date or time (UTC) or Unix seconds."""
    assert report_cli.parse_time(raw, DAY0) == expected


def test_cli_rejects_a_bad_time() -> None:
    """An unreadable --since names the accepted forms."""
    with pytest.raises(ValueError, match="duration"):
        report_cli.parse_time("yesterday", DAY0)


def test_cli_report_status_and_reset(
    r: redis.Redis,
    redis_url: str,
    day_of_traffic: Workload,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`llmtap report` writes a parseable file; `status --json` prints the exact totals;
    `reset` without --yes deletes nothing."""
    out = tmp_path / "r.json"
    since, until = str(DAY0), str(DAY0 + DAY)
    args = ["report", "--url", redis_url, "--since", since, "--until", until, "--format", "json"]
    assert cli.main([*args, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["summary"]["total_calls"] == day_of_traffic.truth.calls
    capsys.readouterr()
    assert cli.main(["status", "--json", "--url", redis_url]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["statistics"]["producers"] == 1
    keys_before = r.dbsize()
    assert cli.main(["reset", "--json", "--url", redis_url]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == 0
    assert r.dbsize() == keys_before


def test_cli_tables_render(
    redis_url: str, day_of_traffic: Workload, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table views of cost, latency, insights, session and the dashboard print."""
    commands = (["cost"], ["latency"], ["insights"], ["session", "s-1"], ["dashboard", "--once"])
    for argv in commands:
        assert cli.main([*argv, "--url", redis_url]) == 0
    assert "cost by model" in capsys.readouterr().out


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["table", "json"])
def test_an_unknown_session_is_one_error_and_exit_1(
    r: redis.Redis, redis_url: str, json_flag: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``llmtap session UNKNOWN`` prints one error line and no table, and exits 1; with
    ``--json`` it prints an error object."""
    assert cli.main(["session", "nope", "--url", redis_url, *json_flag]) == 1
    got = capsys.readouterr()
    assert got.err == "llmtap: no data for session 'nope'\n"
    if json_flag:
        assert json.loads(got.out) == {"error": "no data for session 'nope'"}
    else:
        assert got.out == ""


@pytest.mark.parametrize("command", [["status"], ["cost"], ["configure"]])
def test_read_commands_refuse_a_bad_setting_at_start(command: list[str], redis_url: str) -> None:
    """A read command validates the settings like every worker: one line naming the variable."""
    env = {**os.environ, "CS_PROFILING_LEVEL": "verbose", "LLMTAP_REDIS_URL": redis_url}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "llmtap"), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CS_PROFILING_LEVEL" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
