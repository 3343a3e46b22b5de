"""Cost analysis against seeded synthetic traffic: exact sums, top calls, the month projection."""

from __future__ import annotations

import pytest
import redis

from llmtap.read import tools
from tests.read.truth import DAY0, NOW, Truth


def test_cost_analysis_equals_the_rollups(r: redis.Redis, truth: Truth) -> None:
    """Total, per-backend, per-model, per-tenant and per-session cost are the exact sums."""
    data = tools.get_cost_analysis_data(r, 24, now=NOW)
    total = sum(row.cost_nanousd for row in truth.rows())
    assert data["total_cost_nanousd"] == total
    assert data["total_calls"] == truth.sum_rows("calls")
    for section, attr in [("backend", "backend"), ("model", "model"), ("tenant", "tenant"),
                          ("session", "session")]:  # fmt: skip
        got = {k: v["cost_nanousd"] for k, v in data[f"cost_by_{section}"].items()}
        assert got == {k: v for k, v in truth.cost_by(attr).items() if v}
    model = "gpt-4o"
    tokens = truth.sum_rows("input_tokens", model=model) + truth.sum_rows(
        "output_tokens", model=model
    )
    expected = 1000 * truth.cost_by("model")[model] / 1e9 / tokens
    assert data["cost_per_1k_tokens_by_model"][model] == pytest.approx(expected, rel=1e-12)
    assert data["burn_rate"]["hourly_usd"] == pytest.approx(total / 1e9 / 24, rel=1e-12)


def test_most_expensive_operations_are_the_costliest_call_events(
    r: redis.Redis, truth: Truth
) -> None:
    """The top operations are the ten call events with the highest cost, in order."""
    data = tools.get_cost_analysis_data(r, 24, now=NOW, top_n=10)
    priced = [c for c in truth.calls if c.estimated_cost_usd is not None]
    expected = sorted(priced, key=lambda c: -(c.estimated_cost_usd or 0))[:10]
    got = data["most_expensive_operations"]
    assert [op["call_id"] for op in got] == [c.call_id for c in expected]
    assert [op["cost_usd"] for op in got] == [c.estimated_cost_usd for c in expected]


def test_month_projection_from_a_single_partial_day(r: redis.Redis, truth: Truth) -> None:
    """With only today's spend known, the projection extrapolates today's pace to month end."""
    total = sum(row.cost_nanousd for row in truth.rows()) / 1e9
    burn = tools.get_cost_analysis_data(r, 24, now=NOW)["burn_rate"]
    pace = total / (NOW - DAY0) * 86400
    assert burn["trend_model"] == "today"
    assert burn["month_to_date_usd"] == pytest.approx(total)
    assert burn["projected_month_end_usd"] == pytest.approx(total + pace * (31 - 7200 / 86400))
