"""The Excel report, read back with openpyxl: one sheet per section, typed cells that hold the
model's numbers, USD/percent/date formats, bold frozen headers and widths that fit."""

from __future__ import annotations

import datetime as dt
from io import BytesIO
from typing import Any

import openpyxl
import pytest
import redis

from llmtap.analyzers.report_xlsx import MAX_WIDTH, USD, render_xlsx
from llmtap.testing import Workload
from tests.report_helpers import WEEK, weekly_model

SHEETS = [
    "Summary",
    "Cost by backend",
    "Cost by model",
    "Cost by tenant",
    "Cost by session",
    "Latency",
    "Top calls",
    "Alerts",
    "Insights",
]


@pytest.fixture
def model(r: redis.Redis, day_of_traffic: Workload) -> dict[str, Any]:
    """The weekly report model of a day of synthetic traffic."""
    return weekly_model(r)


def _read(model: dict[str, Any]) -> Any:
    return openpyxl.load_workbook(BytesIO(render_xlsx(model)))


def _rows(ws: Any) -> dict[str, list[Any]]:
    """Return a sheet's data rows by their first cell's value."""
    return {row[0].value: list(row) for row in ws.iter_rows(min_row=2)}


def test_one_sheet_per_section_with_frozen_bold_headers(model: dict[str, Any]) -> None:
    """The workbook has the nine sections in order, each with a bold header row frozen."""
    book = _read(model)
    assert book.sheetnames == SHEETS
    for ws in book:
        assert ws.freeze_panes == "A2", ws.title
        assert all(cell.font.bold for cell in ws[1]), ws.title


def test_summary_cells_are_typed_and_hold_the_models_numbers(model: dict[str, Any]) -> None:
    """Cost is a float in USD format, calls an int, the error rate a percentage, the period
    and generation time UTC datetimes."""
    rows = _rows(_read(model)["Summary"])
    summary = model["summary"]
    cost = rows["total cost"][1]
    assert cost.value == summary["total_cost_usd"] and cost.number_format == USD
    assert rows["calls"][1].value == summary["total_calls"]
    assert isinstance(rows["calls"][1].value, int)
    assert rows["error rate"][1].value == pytest.approx(summary["error_rate"])
    assert rows["error rate"][1].number_format == "0.00%"
    start = dt.datetime.fromtimestamp(WEEK[0], dt.UTC).replace(tzinfo=None)
    assert rows["period start (UTC)"][1].value == start
    assert rows["generated at (UTC)"][1].value == dt.datetime(2026, 1, 5)


def test_cost_and_latency_sheets_match_the_model(model: dict[str, Any]) -> None:
    """Every backend, model, tenant and session row, and every latency percentile, is the
    model's number."""
    book = _read(model)
    cost = model["cost"]
    for sheet, key in (("Cost by backend", "cost_by_backend"), ("Cost by model", "cost_by_model"),
                       ("Cost by tenant", "cost_by_tenant")):  # fmt: skip
        rows = _rows(book[sheet])
        assert set(rows) == set(cost[key])
        for name, row in cost[key].items():
            got = [c.value for c in rows[name][1:6]]
            want = [
                row[k] for k in ("cost_usd", "calls", "errors", "input_tokens", "output_tokens")
            ]
            assert got == want
    sessions = _rows(book["Cost by session"])
    assert {s["session_id"]: s["cost_usd"] for s in model["top_sessions"]} == {
        name: row[1].value for name, row in sessions.items()
    }
    latency = list(book["Latency"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[1], r[6]) for r in latency] == [
        (row["backend"], row["model"], row["p95"]) for row in model["latency"]
    ]


def test_top_calls_and_alerts_carry_dates(model: dict[str, Any]) -> None:
    """Top calls start as UTC datetimes, most expensive first; fired alerts show their
    start and end as datetimes."""
    model["alerts"] = {
        "history_available": True,
        "fired": [{"fingerprint": "f1", "rule": "daily_cost", "severity": "warning",
                   "status": "resolved", "starts_at": WEEK[0] + 60, "ends_at": WEEK[0] + 120}],
        "resolved": [],
    }  # fmt: skip
    book = _read(model)
    calls = list(book["Top calls"].iter_rows(min_row=2, values_only=True))
    ops = model["cost"]["most_expensive_operations"]
    assert [(c[0], c[4]) for c in calls] == [(op["call_id"], op["cost_usd"]) for op in ops]
    assert all(isinstance(c[1], dt.datetime) for c in calls)
    ((fp, rule, _, status, starts, ends),) = book["Alerts"].iter_rows(min_row=2, values_only=True)
    assert (fp, rule, status) == ("f1", "daily_cost", "resolved")
    assert ends - starts == dt.timedelta(seconds=60)


def test_column_widths_fit_the_longest_text(model: dict[str, Any]) -> None:
    """Each column is at least as wide as its header and longest text cell (capped at 80),
    and never narrower than 8; the one-line 'no alert history' note may overflow."""
    for ws in _read(model):
        for column in ws.iter_cols():
            texts = [
                len(c.value)
                for c in column
                if isinstance(c.value, str)
                and c.row > 1
                and not c.value.startswith("No alert history")
            ]  # a note overflows
            texts.append(len(str(column[0].value)))
            width = ws.column_dimensions[column[0].column_letter].width
            assert width >= min(MAX_WIDTH, max(texts, default=0)), (ws.title, column[0].value)
            assert 8 <= width <= MAX_WIDTH


def test_the_same_model_gives_the_same_workbook(model: dict[str, Any]) -> None:
    """The workbook's creation time is the model's generation time, not the clock's."""
    book = _read(model)
    assert book.properties.created == dt.datetime(2026, 1, 5)
    assert book.properties.title == model["title"]
