"""Pure rule evaluation: the rules file, defaults, per-call and windowed rules, silences."""

from __future__ import annotations

from typing import Any

import pytest

from llmtap.analyzers import rules
from llmtap.analyzers.rules import Rule, RuleError, WindowData
from llmtap.settings import Settings
from tests.alert_helpers import T0, call

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


def test_a_file_rule_replaces_a_default_of_the_same_name(tmp_path: Any) -> None:
    """load_rules keeps the defaults and lets the file override one by name."""
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {name: slow-call, kind: latency_above, threshold: 9}\n")
    loaded = {r.name: r for r in rules.load_rules(str(path), Settings())}
    assert loaded["slow-call"].threshold == 9 and "daily-cost" in loaded


PER_CALL = [
    (Rule("r", "cost_above", 0.5), {"estimated_cost_usd": 0.6}, 0.6),
    (Rule("r", "cost_above", 0.5), {"estimated_cost_usd": 0.5}, None),
    (Rule("r", "cost_above", 0.5), {"estimated_cost_usd": None}, None),
    (Rule("r", "latency_above", 2), {"latency": 3.0, "end_time": T0 + 3}, 3.0),
    (Rule("r", "memory_above", 100), {"memory_peak_bytes": 200_000_000}, 200.0),
    (Rule("r", "memory_above", 100), {"memory_peak_bytes": None}, None),
    (Rule("r", "error"), {"success": False, "error_type": "Timeout"}, 1.0),
    (Rule("r", "error", error_type="RateLimit"), {"success": False, "error_type": "Timeout"}, None),
    (Rule("r", "error"), {}, None),
    (Rule("r", "breaker_open"), {"circuit_breaker_triggered": True}, 1.0),
    (Rule("r", "breaker_open"), {"circuit_breaker_state": "open"}, 1.0),
    (Rule("r", "cost_above", 0, filters={"backend": "anthropic"}), {}, None),
    (Rule("r", "cost_above", 0, filters={"tenant": "acme"}), {"tenant": "acme"}, 0.01),
    (Rule("r", "cost_above", 0, tags={"f": "x"}), {"tags": {"f": "y"}}, None),
]


@pytest.mark.parametrize(("rule", "fields", "value"), PER_CALL)
def test_per_call_rules(rule: Rule, fields: dict[str, Any], value: float | None) -> None:
    """A per-call rule matches exactly the calls that pass its filters and break it."""
    found = rules.evaluate_call([rule], call(**fields))
    assert [pytest.approx(o.value) for o in found] == ([] if value is None else [value])


def test_labels_and_fingerprint_follow_group_by() -> None:
    """Labels are the group_by values; equal labels give equal fingerprints."""
    rule = Rule("r", "latency_above", 0.5, group_by=("model", "tag:feature"))
    a = rules.evaluate_call([rule], call(tags={"feature": "chat"}))[0]
    b = rules.evaluate_call([rule], call(call_id="c-2", tags={"feature": "chat"}))[0]
    c = rules.evaluate_call([rule], call(tags={"feature": "search"}))[0]
    assert a.labels == {"model": "gpt-4o", "feature": "chat"} or a.labels == {
        "model": "gpt-4o",
        "tag:feature": "chat",
    }
    assert a.fingerprint == b.fingerprint != c.fingerprint


JUNE_15 = 1_781_481_600.0  # 2026-06-15T00:00:00Z: 14 of 30 days gone
WINDOWED = [
    (Rule("d", "daily_cost_above", 10), {"total": {"cost_usd": 11.0}}, [11.0]),
    (Rule("d", "daily_cost_above", 10), {"total": {"cost_usd": 9.0}}, []),
    (
        Rule("d", "daily_cost_above", 10, group_by=("backend",)),
        {"openai": {"cost_usd": 12.0}, "anthropic": {"cost_usd": 1.0}},
        [12.0],
    ),
    (Rule("b", "monthly_budget", budget_usd=100), {"total": {"cost_usd": 85.0}}, [85.0, 85.0]),
    (Rule("b", "monthly_budget", budget_usd=100), {"total": {"cost_usd": 100.0}}, [100.0] * 3),
    (
        Rule("p", "projected_month_end_above", budget_usd=100),
        {"total": {"cost_usd": 60.0}},
        [60 * 30 / 14],
    ),
    (Rule("p", "projected_month_end_above", budget_usd=100), {"total": {"cost_usd": 40.0}}, []),
    (Rule("e", "error_rate_above", 10, min_calls=20), {"total": {"calls": 20, "errors": 3}}, [15]),
    (Rule("e", "error_rate_above", 10, min_calls=20), {"total": {"calls": 19, "errors": 9}}, []),
    (Rule("l", "p95_latency_above", 2, group_by=("backend", "model")), {"a/m": {"p95": 3}}, [3]),
]


@pytest.mark.parametrize(("rule", "current", "values"), WINDOWED)
def test_windowed_rules(
    rule: Rule, current: dict[str, dict[str, float]], values: list[float]
) -> None:
    """A windowed rule fires for each group (and budget threshold) over its threshold."""
    found = rules.evaluate_window(rule, WindowData(current), JUNE_15)
    assert [pytest.approx(o.value) for o in found] == values


def test_budget_thresholds_are_separate_alerts_per_period() -> None:
    """Each crossed budget threshold is its own fingerprint, labelled with the month."""
    rule = Rule("b", "monthly_budget", budget_usd=100)
    found = rules.evaluate_window(rule, WindowData({"total": {"cost_usd": 85.0}}), JUNE_15)
    assert [o.labels for o in found] == [
        {"threshold_pct": "50", "period": "2026-06"},
        {"threshold_pct": "80", "period": "2026-06"},
    ]
    assert len({o.fingerprint for o in found}) == 2


@pytest.mark.parametrize(
    ("current", "baseline", "fires"),
    [(10.0, 6.0, True), (10.0, 120.0, False), (0.5, 0.01, False), (10.0, 0.0, False)],
)
def test_anomaly_compares_with_the_baseline_rate(
    current: float, baseline: float, fires: bool
) -> None:
    """Cost anomaly: window cost over the baseline cost scaled to the window, above a floor."""
    rule = Rule("a", "anomaly", 1.0, window_s=300, baseline_s=3000, factor=3)
    data = WindowData({"total": {"cost_usd": current}}, {"total": {"cost_usd": baseline}})
    assert bool(rules.evaluate_window(rule, data, JUNE_15)) is fires


def test_window_spans() -> None:
    """Daily rules read since UTC midnight, budget rules since the 1st, others their window."""
    now = JUNE_15 + 3600
    assert rules.window_span(Rule("d", "daily_cost_above"), now) == (JUNE_15, now)
    assert rules.window_span(Rule("b", "monthly_budget", budget_usd=1), now)[0] == 1_780_272_000
    assert rules.window_span(Rule("e", "error_rate_above", window_s=60), now) == (now - 60, now)


@pytest.mark.parametrize(
    ("matchers", "hit"),
    [
        ({"rule": "r"}, True),
        ({"rule": "r", "model": "gpt-4o"}, True),
        ({"rule": "r", "model": "other"}, False),
        ({"model": "*"}, True),
        ({"tenant": "*"}, False),
    ],
)
def test_silence_matching(matchers: dict[str, str], hit: bool) -> None:
    """A silence matches when every matcher equals the label; ``*`` needs the label present."""
    assert rules.silenced({"rule": "r", "model": "gpt-4o"}, matchers) is hit
