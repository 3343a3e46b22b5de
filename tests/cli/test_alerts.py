"""The ``llmtap alerts`` command: rules in force, silences, and the alert state."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from llmtap import cli
from llmtap.analyzers.rules import Rule
from llmtap.cli.alerts import create_silence, list_silences
from tests.alert_helpers import RULE_DOC, T0, active


def test_a_bad_rules_file_fails_at_start_with_the_line(tmp_path: Any, monkeypatch: Any) -> None:
    """``llmtap alerts rules`` on a broken file exits 2 naming the file and line."""
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: a\n    kind: cost_above\n    threshold: lots\n")
    monkeypatch.setenv("LLMTAP_ALERT_RULES", str(path))
    assert cli.main(["alerts", "rules"]) == 2


def test_the_rules_command_lists_defaults_and_file_rules(
    tmp_path: Any, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``llmtap alerts rules`` prints one line per rule in force."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULE_DOC)
    monkeypatch.setenv("LLMTAP_ALERT_RULES", str(path))
    assert cli.main(["alerts", "rules"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["daily-cost", "slow-call", "call-memory", "failing"]


def test_silences_from_the_command_line(
    r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """silence creates, silences lists, expire ends a silence."""
    assert (
        cli.main(["alerts", "silence", "-m", "rule=slow", "--for", "1h", "--url", redis_url]) == 0
    )
    created = json.loads(capsys.readouterr().out)
    assert created["matchers"] == {"rule": "slow"}
    assert cli.main(["alerts", "silences", "--url", redis_url]) == 0
    assert [s["id"] for s in json.loads(capsys.readouterr().out)] == [created["id"]]
    assert cli.main(["alerts", "expire", created["id"], "--url", redis_url]) == 0
    assert cli.main(["alerts", "expire", created["id"], "--url", redis_url]) == 1


def test_a_silence_expires_by_itself(r: redis.Redis) -> None:
    """A silence is listed until its end and not after."""
    create_silence(r, {"model": "gpt-4o"}, 60, now=T0)
    assert len(list_silences(r, T0 + 59)) == 1
    assert list_silences(r, T0 + 61) == []


def test_list_and_show_print_the_alert_state(
    r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``alerts list`` shows a firing default-rule alert; ``alerts show FP`` its state."""
    rule = Rule("slow-call", "latency_above", 30.0, group_by=("model",))
    active(redis_url, rule, {"model": "gpt-4o"}, T0)
    assert cli.main(["alerts", "list", "--url", redis_url]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["status"] == "firing" and listed["doc"]["labels"] == {"model": "gpt-4o"}
    assert cli.main(["alerts", "show", listed["fingerprint"], "--url", redis_url]) == 0
    assert json.loads(capsys.readouterr().out)["seq"] == 1
    assert cli.main(["alerts", "show", "nope", "--url", redis_url]) == 1


def test_a_silence_longer_than_the_cap_is_refused_by_the_cli(
    redis_url: str, r: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI, the HTTP API and the MCP tools share one cap: 31 days is a one-line error and
    stores nothing."""
    code = cli.main(["alerts", "silence", "-m", "rule=slow", "--for", "31d", "--url", redis_url])
    assert code != 0
    assert "at most 30 days" in capsys.readouterr().err
    assert list_silences(r, time.time()) == []
