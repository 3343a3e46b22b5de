"""The report as an Excel workbook (openpyxl): one sheet per section, typed cells (numbers, UTC
dates, USD and percent formats), bold frozen headers and column widths that fit (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from llmtap.analyzers.extras import optional

USD: Final = '"$"#,##0.00####'
PCT: Final = "0.00%"
INT: Final = "#,##0"
SECONDS: Final = "0.000"
NUMBER: Final = "0.0###"
DATE: Final = "yyyy-mm-dd hh:mm:ss"
MIN_WIDTH: Final = 8
MAX_WIDTH: Final = 80
# How wide a formatted cell shows, in characters, for the widths that fit.
_SHOWN: Final = {USD: 14, PCT: 8, INT: 12, SECONDS: 10, NUMBER: 12, DATE: 19}


@dataclass(frozen=True)
class Column:
    """One column of a sheet: its header, the row field it shows, and its number format."""

    header: str
    field: str
    fmt: str | None = None


@dataclass(frozen=True)
class Sheet:
    """One worksheet: a title (31 characters at most) and its columns and rows."""

    title: str
    columns: tuple[Column, ...]
    rows: Sequence[Mapping[str, Any]]
    note: str | None = None


def _utc(ts: Any) -> dt.datetime | None:
    """Return Unix seconds as a naive UTC datetime (Excel has no time zones), or None."""
    try:
        return dt.datetime.fromtimestamp(float(ts), dt.UTC).replace(tzinfo=None)
    except (TypeError, ValueError):
        return None


def _named(rows: Mapping[str, Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    return [{key: name, **row} for name, row in rows.items()]


_COST_COLUMNS: Final = (
    Column("USD", "cost_usd", USD),
    Column("calls", "calls", INT),
    Column("errors", "errors", INT),
    Column("input tokens", "input_tokens", INT),
    Column("output tokens", "output_tokens", INT),
)


def _summary_rows(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    period, summary, burn = model["period"], model["summary"], model["cost"]["burn_rate"]
    rows: list[tuple[str, Any, str | None]] = [
        ("period start (UTC)", _utc(period["since"]), DATE),
        ("period end (UTC)", _utc(period["until"]), DATE),
        ("generated at (UTC)", _parse_iso(model["generated_at"]), DATE),
        ("total cost", summary["total_cost_usd"], USD),
        ("calls", summary["total_calls"], INT),
        ("errors", summary["errors"], INT),
        ("error rate", summary["error_rate"], PCT),
        ("p95 latency (s)", summary["p95_latency_s"], SECONDS),
        ("hourly burn", burn.get("hourly_usd"), USD),
        ("daily burn", burn.get("daily_usd"), USD),
        ("month to date", burn.get("month_to_date_usd"), USD),
        ("projected month end", summary["projected_month_end_usd"], USD),
        ("projection low", burn.get("projection_low_usd"), USD),
        ("projection high", burn.get("projection_high_usd"), USD),
        ("monthly budget", burn.get("budget_usd"), USD),
        ("recommendations", summary["recommendations"], INT),
    ]
    return [{"metric": name, "value": value, "_fmt": fmt} for name, value, fmt in rows]


def _parse_iso(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
    except (AttributeError, ValueError):
        return None


def _alert_rows(alerts: Mapping[str, Any]) -> list[dict[str, Any]]:
    seen: dict[str, Mapping[str, Any]] = {}
    for item in [*alerts.get("fired", []), *alerts.get("resolved", [])]:
        seen[item["fingerprint"]] = item
    return [
        {**a, "starts": _utc(a.get("starts_at")), "ends": _utc(a.get("ends_at"))}
        for a in seen.values()
    ]


def sheets(model: Mapping[str, Any]) -> list[Sheet]:
    """Return the workbook's sheets, in order: summary, cost by backend, model, tenant and
    session, latency percentiles, top calls, alerts, insights."""
    cost = model["cost"]
    per_1k = cost.get("cost_per_1k_tokens_by_model") or {}
    models = [{**row, "per_1k": per_1k.get(row["model"])} for row in
              _named(cost["cost_by_model"], "model")]  # fmt: skip
    no_history = None if model["alerts"].get("history_available") else (
        "No alert history: the alerts worker has recorded no alert state.")  # fmt: skip
    return [
        Sheet("Summary", (Column("metric", "metric"), Column("value", "value")),
              _summary_rows(model)),
        Sheet("Cost by backend", (Column("backend", "backend"), *_COST_COLUMNS),
              _named(cost["cost_by_backend"], "backend")),
        Sheet("Cost by model", (Column("model", "model"), *_COST_COLUMNS,
                                Column("USD per 1k tokens", "per_1k", USD)), models),
        Sheet("Cost by tenant", (Column("tenant", "tenant"), *_COST_COLUMNS),
              _named(cost.get("cost_by_tenant") or {}, "tenant")),
        Sheet("Cost by session", (Column("session", "session_id"), Column("USD", "cost_usd", USD),
                                  Column("calls", "calls", INT), Column("errors", "errors", INT)),
              list(model["top_sessions"])),
        Sheet("Latency", (Column("backend", "backend"), Column("model", "model"),
                          Column("events", "count", INT), Column("calls (weighted)",
                          "weighted_count", INT), Column("mean (s)", "mean", SECONDS),
                          Column("p50 (s)", "p50", SECONDS), Column("p95 (s)", "p95", SECONDS),
                          Column("p99 (s)", "p99", SECONDS), Column("min (s)", "min", SECONDS),
                          Column("max (s)", "max", SECONDS)), list(model["latency"])),
        Sheet("Top calls", (Column("call", "call_id"), Column("started (UTC)", "started", DATE),
                            Column("backend", "backend"), Column("model", "model"),
                            Column("USD", "cost_usd", USD), Column("session", "session"),
                            Column("tenant", "tenant")),
              [{**op, "started": _utc(op.get("start_time"))}
               for op in cost["most_expensive_operations"]]),
        Sheet("Alerts", (Column("fingerprint", "fingerprint"), Column("rule", "rule"),
                         Column("severity", "severity"), Column("status", "status"),
                         Column("starts (UTC)", "starts", DATE),
                         Column("ends (UTC)", "ends", DATE)),
              _alert_rows(model["alerts"]), note=no_history),
        Sheet("Insights", (Column("priority", "priority"), Column("category", "category"),
                           Column("recommendation", "recommendation"),
                           Column("potential improvement", "potential_improvement"),
                           Column("saving (USD)", "estimated_saving_usd", USD),
                           Column("saving (s)", "estimated_saving_s", SECONDS)),
              list(model["insights"])),
    ]  # fmt: skip


def _cell_value(value: Any) -> Any:
    """Return what a cell holds: numbers, datetimes and text as they are, anything else as text."""
    if value is None or isinstance(value, int | float | str | dt.datetime):
        return value
    return str(value)


def _shown_width(value: Any, fmt: str | None) -> int:
    if value is None:
        return 0
    if fmt is not None and not isinstance(value, str):
        return _SHOWN.get(fmt, 12)
    return len(str(value))


class _Sink(list[bytes]):
    """A write-only byte sink for openpyxl's zip writer: the workbook stays in memory."""

    def write(self, data: bytes) -> int:
        self.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing to flush."""


def _fill(ws: Any, sheet: Sheet, bold: Any) -> None:
    widths = [len(c.header) for c in sheet.columns]
    ws.append([c.header for c in sheet.columns])
    for cell in ws[1]:
        cell.font = bold
    for row in sheet.rows:
        values = [_cell_value(row.get(c.field)) for c in sheet.columns]
        ws.append(values)
        for i, (column, value) in enumerate(zip(sheet.columns, values, strict=True)):
            fmt = row.get("_fmt", column.fmt) if column.field == "value" else column.fmt
            if fmt is not None and value is not None and not isinstance(value, str):
                ws.cell(row=ws.max_row, column=i + 1).number_format = fmt
            widths[i] = max(widths[i], _shown_width(value, fmt))
    if sheet.note and not sheet.rows:
        ws.append([sheet.note])
    ws.freeze_panes = "A2"
    for i, width in enumerate(widths):
        letter = ws.cell(row=1, column=i + 1).column_letter
        ws.column_dimensions[letter].width = min(MAX_WIDTH, max(MIN_WIDTH, width + 2))


def render_xlsx(model: Mapping[str, Any], chosen: Sequence[Sheet] | None = None) -> bytes:
    """Return the report as XLSX bytes (``chosen`` sheets, default :func:`sheets`).

    Raises MissingExtra without openpyxl.
    """
    openpyxl = optional("openpyxl", "Excel reports")
    styles = optional("openpyxl.styles", "Excel reports")
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    bold = styles.Font(bold=True)
    for sheet in chosen if chosen is not None else sheets(model):
        _fill(workbook.create_sheet(sheet.title[:31]), sheet, bold)
    workbook.properties.title = str(model["title"])
    created = _parse_iso(str(model["generated_at"]))
    if created is not None:  # the model's time, not the clock's: the same model, the same file
        workbook.properties.created = workbook.properties.modified = created
    sink = _Sink()
    workbook.save(sink)
    return b"".join(sink)
