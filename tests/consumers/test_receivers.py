"""Receiver configuration (rules file and environment) and the ``llmtap alerts`` command."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from llmtap import cli
from llmtap.analyzers.rules import Rule, RuleError
from llmtap.cli.alerts import create_silence, list_silences
from llmtap.consumers.notify.config import parse_receivers, receivers_from_env
from llmtap.consumers.notify.senders import slack_message
from llmtap.settings import SettingsError
from tests.alert_helpers import RULE_DOC, T0, active

RECEIVERS = """\
receivers:
  - name: pager
    kind: webhook
    url: https://hooks.example.test/pager
    secret_env: PAGER_SECRET
    routes:
      - severity: critical
      - match: {tenant: acme}
    retry: {attempts: 3, base: 1s, cap: 1m, timeout: 2s}
    group_by: [rule, tenant]
    group_wait: 30s
    group_interval: 5m
  - name: team
    kind: slack
    token_env: SLACK_TOKEN
    channel: "#llm-alerts"
"""
ENV = {"PAGER_SECRET": "p-secret", "SLACK_TOKEN": "xoxb-1"}


def test_receivers_parse_with_routes_retry_and_grouping() -> None:
    """Every receiver field lands in its Receiver; secrets come from the environment."""
    pager, team = parse_receivers(RECEIVERS, ENV, "r.yaml")
    assert pager.secret == "p-secret" and pager.retry.attempts == 3 and pager.retry.cap_s == 60
    assert pager.group_by == ("rule", "tenant") and pager.group_wait_s == 30
    assert pager.wants({"severity": "critical", "labels": {}})
    assert pager.wants({"severity": "info", "labels": {"tenant": "acme"}})
    assert not pager.wants({"severity": "info", "labels": {"tenant": "globex"}})
    assert team.token == "xoxb-1" and team.channel == "#llm-alerts"


def test_secrets_never_show_in_a_repr() -> None:
    """Printing or logging a receiver shows no URL, secret or token."""
    text = repr(parse_receivers(RECEIVERS, ENV))
    assert "p-secret" not in text and "xoxb-1" not in text and "hooks.example" not in text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("receivers:\n  - name: a\n    secret: plain\n    url: http://x\n", "secret_env"),
        ("receivers:\n  - name: a\n    url: http://x\n    secret_env: MISSING\n", "MISSING"),
        ("receivers:\n  - name: a\n    kind: pigeon\n    url: http://x\n", "pigeon"),
        ("receivers:\n  - name: a\n", "needs url"),
        ("receivers:\n  - name: a\n    url: x\n    routes: [{severity: loud}]\n", "loud"),
    ],
)
def test_bad_receivers_name_the_line_and_reason(text: str, reason: str) -> None:
    """A bad receiver fails with RuleError naming file, line and what is wrong."""
    with pytest.raises(RuleError, match=reason) as info:
        parse_receivers(text, {}, "r.yaml")
    assert "r.yaml:2:" in str(info.value)


def test_environment_receivers() -> None:
    """LLMTAP_ALERT_WEBHOOK_URL and LLMTAP_SLACK_BOT_TOKEN + channel make two receivers."""
    env = {
        "LLMTAP_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
        "LLMTAP_ALERT_WEBHOOK_SECRET": "s",
        "LLMTAP_SLACK_BOT_TOKEN": "xoxb-2",
        "LLMTAP_SLACK_CHANNEL": "#c",
    }
    hook, slack = receivers_from_env(env)
    assert (hook.kind, hook.secret, slack.kind, slack.channel) == ("webhook", "s", "slack", "#c")
    with pytest.raises(SettingsError, match="LLMTAP_SLACK_CHANNEL"):
        receivers_from_env({"LLMTAP_SLACK_BOT_TOKEN": "xoxb-2"})


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


def test_slack_message_says_what_how_bad_since_when_and_what_to_run() -> None:
    """The Block Kit message has a header, the summary, value/threshold, start and the command."""
    alert = {
        "status": "firing",
        "rule": "slow",
        "severity": "critical",
        "summary": "a call took 5.00 s (> 2 s)",
        "labels": {"model": "gpt-4o"},
        "values": {"value": 5.0},
        "thresholds": {"threshold": 2.0},
        "startsAt": T0,
        "endsAt": None,
        "fingerprint": "abc",
    }
    text, blocks = slack_message([alert])
    dumped = json.dumps(blocks)
    assert text.startswith("FIRING: slow")
    for needle in ("5 (threshold 2)", "2026-01-01T00:00:00.000Z", "llmtap alerts show abc"):
        assert needle in dumped


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
    assert json.loads(capsys.readouterr().out)["seq"] == "1"
    assert cli.main(["alerts", "show", "nope", "--url", redis_url]) == 1
