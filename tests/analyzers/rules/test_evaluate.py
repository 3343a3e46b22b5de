"""Rule evaluation: per-call and windowed rules, the projected-spend rule, and silences."""

from __future__ import annotations

from typing import Any

import pytest

from llmtap.analyzers import burn, rules
from llmtap.analyzers.rules import Rule, WindowData
from tests.alert_helpers import T0, call

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


JUNE_1 = 1_780_272_000
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
    (  # only the month's total read: burn's projection over an even spread, the average pace
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


def test_projected_spend_quotes_the_burn_projection() -> None:
    """The projected-spend rule's value is burn.project_month's over the days read for it."""
    rule = Rule("p", "projected_month_end_above", budget_usd=100)
    daily = {JUNE_1 + i * burn.DAY: float(i + 1) for i in range(14)}
    data = WindowData({"total": {"cost_usd": sum(daily.values())}}, daily={"total": daily})
    (found,) = rules.evaluate_window(rule, data, JUNE_15)
    expected = burn.project_month(daily, JUNE_15).projected_month_end_usd
    # $1 on June 1st rising by $1 a day: the trend goes on rising (15 today ... 30 on the
    # 30th), so 105 + 360, where a straight line from the month's average would say 225.
    assert found.value == pytest.approx(expected)
    assert expected == pytest.approx(465.0)


def test_window_spans() -> None:
    """Daily rules read since UTC midnight, budget rules since the 1st, others their window."""
    now = JUNE_15 + 3600
    assert rules.window_span(Rule("d", "daily_cost_above"), now) == (JUNE_15, now)
    assert rules.window_span(Rule("b", "monthly_budget", budget_usd=1), now)[0] == JUNE_1
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
