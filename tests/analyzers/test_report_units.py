"""The human renderings of the units convention, and the report's Markdown using them."""

from __future__ import annotations

from typing import Any

import pytest

from llmtap.analyzers import report, units


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(1.2345, "1,234 ms"), (0.0453, "45.3 ms"), (0.00085, "0.85 ms"), (None, "-")],
)
def test_latency_is_shown_in_ms(seconds: float | None, shown: str) -> None:
    """Seconds are shown as milliseconds with three or so significant digits."""
    assert units.ms(seconds) == shown


@pytest.mark.parametrize(
    ("amount", "shown"),
    [(1234.5, "$1,234.50"), (2.0, "$2.00"), (0.0123, "$0.0123"), (0.0000452, "$0.0000452"),
     (0.0, "$0.00"), (None, "-")],
)  # fmt: skip
def test_money_is_shown_with_dollars(amount: float | None, shown: str) -> None:
    """USD shows cents from $1 up, three significant digits below."""
    assert units.usd(amount) == shown


@pytest.mark.parametrize(
    ("fraction", "shown"), [(0.0328, "3.28%"), (0.975, "97.5%"), (1.0, "100.0%")]
)
def test_fractions_are_shown_as_percentages(fraction: float, shown: str) -> None:
    """A fraction is shown as a percentage."""
    assert units.pct(fraction) == shown


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [("total_cost_usd", 1.5, "$1.50"), ("p95_latency_s", 0.25, "250 ms"),
     ("avg_latency", 2.0, "2,000 ms"), ("error_rate", 0.05, "5.00%"),
     ("network_share", 0.5, "50.0%"), ("budget_used_pct", 42.0, "42.0%"),
     ("tokens_per_s", 12.5, "12.5"), ("total_calls", 7, "7"), ("enabled", True, "True")],
)  # fmt: skip
def test_a_field_is_shown_by_the_unit_its_name_carries(name: str, value: Any, shown: str) -> None:
    """``human`` picks the rendering from the field name's unit suffix."""
    assert units.human(name, value) == shown


def test_the_markdown_report_shows_ms_dollars_and_percentages() -> None:
    """Latency cells are in ms, costs in $ and error rates in %; the JSON keeps base units."""
    latency = {"backend": "openai", "model": "gpt-4o", "count": 3, "weighted_count": 30.0,
               "mean": 0.5, "p50": 0.4, "p95": 1.25, "p99": 2.0}  # fmt: skip
    row = {"cost_usd": 0.25, "cost_nanousd": 250_000_000, "calls": 30, "errors": 3,
           "input_tokens": 1000, "output_tokens": 100}  # fmt: skip
    model = report.build_report(
        since=1_767_225_600, until=1_767_229_200,
        cost={"total_cost_usd": 0.25, "total_calls": 30, "unpriced_calls": 0,
              "cost_by_backend": {"openai": row}, "cost_by_model": {"gpt-4o": row},
              "cost_by_tenant": {},
              "cost_per_1k_tokens_by_model": {"gpt-4o": 0.25 / 1.1},
              "burn_rate": {"projected_month_end_usd": 7.5, "budget_used_pct": None},
              "most_expensive_operations": []},
        performance={"error_rates": {"errors": 3, "error_rate": 0.1,
                                     "by_model": {"gpt-4o": {"calls": 30, "errors": 3,
                                                             "error_rate": 0.1}}},
                     "overall": latency, "latency": [latency], "backend_comparison": [],
                     "throughput": {"calls": 30, "generation_tokens_per_s": 40.0}},
        insights={"recommendations": []}, alerts={}, cost_series={}, top_sessions=[],
    )  # fmt: skip
    assert model["summary"]["error_rate"] == 0.1 and model["summary"]["p95_latency_s"] == 1.25
    md = report.render_markdown(model)
    assert "| openai | gpt-4o | 30 | 400 ms | 1,250 ms | 2,000 ms |" in md
    assert "| gpt-4o | 30 | 3 | 10.0% |" in md
    assert "| error_rate | 10.0% |" in md and "| total_cost_usd | $0.25 |" in md
    assert "| gpt-4o | $0.25 | 30 | $0.227 |" in md
