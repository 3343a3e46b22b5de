"""The performance dashboard: the original sections, with exact numbers."""

from __future__ import annotations

import pytest
import redis

from llmtap.read import tools
from tests.read.truth import NOW, Truth


def test_dashboard_sections_and_exact_numbers(r: redis.Redis, truth: Truth) -> None:
    """The dashboard holds the original sections; cost, calls and success rate are exact."""
    dash = tools.get_performance_dashboard(r, 24, include_cache_stats=True, now=NOW)
    assert set(dash) == {"dashboard_metadata", "cost_analysis", "performance", "efficiency",
                         "alerts", "cache_stats"}  # fmt: skip
    meta = dash["dashboard_metadata"]
    assert meta == {"generated_at": "2026-01-01T02:00:00Z", "timeframe_hours": 24,
                    "total_metrics_analyzed": len(truth.calls)}  # fmt: skip
    calls, errors = truth.sum_rows("calls"), truth.sum_rows("errors")
    assert dash["performance"]["success_rate"] == pytest.approx((calls - errors) / calls)
    total = sum(row.cost_nanousd for row in truth.rows()) / 1e9
    assert dash["cost_analysis"]["total_cost_usd"] == pytest.approx(total, rel=1e-15)
    inputs = truth.sum_rows("input_tokens")
    assert dash["efficiency"]["output_input_ratio"] == truth.sum_rows("output_tokens") / inputs
    assert dash["alerts"]["history_available"] is False
