"""The rules-file parser: fields, file:line errors, durations and the default rules."""

from __future__ import annotations

from typing import Any

import pytest

from llmtap.analyzers import rules
from llmtap.analyzers.rules import RuleError
from llmtap.settings import Settings

GOOD = """\
rules:
  - name: pricey
    kind: cost_above
    threshold: 0.5
    severity: critical
    backend: openai
    tags: {feature: search}
    group_by: [backend, model, tag:feature]
    repeat_interval: 2h
  - name: budget
    kind: monthly_budget
    budget_usd: 1000
    thresholds: [100, 50, 80]
    group_by: [tenant]
"""


def test_a_good_file_parses_into_rules() -> None:
    """Every field of a valid file lands in its rule, thresholds sorted."""
    pricey, budget = rules.parse_rules(GOOD, "r.yaml")
    assert pricey.kind == "cost_above" and pricey.threshold == 0.5
    assert pricey.filters == {"backend": "openai"} and pricey.tags == {"feature": "search"}
    assert pricey.repeat_interval_s == 7200 and pricey.severity == "critical"
    assert budget.thresholds_pct == (50, 80, 100) and budget.dimension == "tenant"
    assert budget.repeat_interval_s == rules.NEVER and budget.send_resolved is False


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("rules:\n  - name: a\n    kind: nope\n", 3, "kind"),
        ("rules:\n  - name: a\n    kind: cost_above\n    threshold: x\n", 4, "not a number"),
        ("rules:\n  - name: a\n    kind: cost_above\n    colour: red\n", 4, "unknown field"),
        ("rules:\n  - name: a\n    kind: error\n    for: soon\n", 4, "duration"),
        ("rules:\n  - name: a\n    kind: monthly_budget\n", 2, "budget_usd"),
        ("rules:\n  - name: a\n    kind: daily_cost_above\n    tags: {a: b}\n", 4, "tags"),
        ("rules:\n  - {name: a, kind: error}\n  - {name: a, kind: error}\n", 3, "duplicate"),
        ("rules:\n  - name: a\n    kind: [unclosed\n", 4, "invalid YAML"),
        ("rules:\n  - name: a\n    kind: error\n    severity: loud\n", 4, "severity"),
        ("rules:\n  - name: a\n    kind: error\n    group_by: [colour]\n", 4, "group_by"),
    ],
)
def test_a_bad_file_names_the_line_and_reason(text: str, line: int, reason: str) -> None:
    """Each kind of mistake raises RuleError with ``file:line`` and what is wrong."""
    with pytest.raises(RuleError) as info:
        rules.parse_rules(text, "r.yaml")
    assert f"r.yaml:{line}:" in str(info.value)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(30, 30.0), ("30s", 30.0), ("5m", 300.0), ("4h", 14400.0), ("1d", 86400.0), ("250ms", 0.25)],
)
def test_durations(raw: Any, seconds: float) -> None:
    """Durations accept plain seconds and ms/s/m/h/d suffixes."""
    assert rules.parse_duration("for", raw) == pytest.approx(seconds)


def test_defaults_come_from_the_cs_profiling_thresholds() -> None:
    """The three CS_PROFILING_*_ALERT settings become three rules; 0 disables one."""
    made = rules.default_rules(Settings(cost_alert_usd=5, latency_alert_s=2, memory_alert_mb=0))
    assert [(r.name, r.kind, r.threshold) for r in made] == [
        ("daily-cost", "daily_cost_above", 5),
        ("slow-call", "latency_above", 2),
    ]
