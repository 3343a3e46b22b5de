"""Receiver configuration (rules file and environment) and the Slack alert message."""

from __future__ import annotations

import json

import pytest

from llmtap.analyzers.rules import RuleError
from llmtap.consumers.notify.config import parse_receivers, receivers_from_env
from llmtap.consumers.notify.senders import slack_message
from llmtap.settings import SettingsError
from tests.alert_helpers import T0

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
