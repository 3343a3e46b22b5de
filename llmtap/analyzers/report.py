"""The report model and its renderings: Markdown, HTML (inline SVG charts), JSON and CSV (pure).

:func:`build_report` assembles one period's sections from the tool functions' structures;
:func:`render` turns the model into text. Nothing here reads Redis or the clock.
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import msgspec

from llmtap.analyzers import units
from llmtap.analyzers.units import human, ms, pct, usd

TEXT_FORMATS: Final = ("md", "html", "json", "csv")
# pdf and xlsx are bytes: llmtap.analyzers.report_output renders every format as bytes.
FORMATS: Final = (*TEXT_FORMATS, "pdf", "xlsx")
PALETTE: Final = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1")
CHART_W: Final = 640
CHART_H: Final = 260
MARGIN: Final = 48


def build_report(
    *,
    since: float,
    until: float,
    cost: Mapping[str, Any],
    performance: Mapping[str, Any],
    insights: Mapping[str, Any],
    alerts: Mapping[str, Any],
    cost_series: Mapping[str, Any],
    top_sessions: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Return the report model of ``[since, until)`` (JSON-ready; the period's end is "now").

    Numbers are typed and in base units (seconds, USD, fractions); times are ISO-8601 UTC
    strings, except ``period.since``/``until`` and the chart's bucket starts (Unix seconds).
    """
    errors = performance["error_rates"]
    overall = performance.get("overall") or {}
    return {
        "title": f"llmtap report {units.iso(since)[:10]} to {units.iso(until)[:16]}Z",
        "generated_at": units.iso(until),
        "period": {
            "since": since,
            "until": until,
            "since_iso": units.iso(since),
            "until_iso": units.iso(until),
            "hours": (until - since) / 3600,
        },
        "summary": {
            "total_cost_usd": cost["total_cost_usd"],
            "total_calls": cost["total_calls"],
            "errors": errors["errors"],
            "error_rate": errors["error_rate"],
            "p95_latency_s": overall.get("p95"),
            "projected_month_end_usd": cost["burn_rate"]["projected_month_end_usd"],
            "recommendations": len(insights["recommendations"]),
        },
        "cost": {key: cost[key] for key in _COST_KEYS},
        "top_sessions": list(top_sessions),
        "latency": performance["latency"],
        "backend_latency": performance["backend_comparison"],
        "throughput": performance["throughput"],
        "error_rates": errors,
        "alerts": dict(alerts),
        "insights": insights["recommendations"],
        "anomalies": insights.get("anomalies", []),
        "charts": {"cost_over_time": dict(cost_series)},
    }


_COST_KEYS: Final = (
    "total_cost_usd",
    "total_calls",
    "unpriced_calls",
    "cost_by_backend",
    "cost_by_model",
    "cost_by_tenant",
    "cost_per_1k_tokens_by_model",
    "burn_rate",
    "most_expensive_operations",
)


def render(model: Mapping[str, Any], fmt: str) -> str:
    """Return the report as ``fmt`` (md, html, json or csv). Raises ValueError otherwise."""
    renderers: dict[str, Callable[[Mapping[str, Any]], str]] = {
        "md": render_markdown,
        "html": render_html,
        "json": render_json,
        "csv": render_csv,
    }
    if fmt not in renderers:
        known = ", ".join(TEXT_FORMATS)
        raise ValueError(f"report format {fmt!r} is not a text format; text formats: {known}")
    return renderers[fmt](model)


def render_json(model: Mapping[str, Any]) -> str:
    """Return the model as indented JSON (no NaN or infinity): encoded compactly by the
    standard library's C encoder and indented by msgspec, the very text ``json.dumps(indent=2)``
    gives (which falls back to the pure-Python encoder, 2.4x slower on a day's report)."""
    compact = json.dumps(model, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return msgspec.json.format(compact, indent=2) + "\n"


# --- CSV -----------------------------------------------------------------------------------

CSV_HEADER: Final = ("section", "name", "metric", "value")


def csv_rows(model: Mapping[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    """Yield (section, name, metric, value) rows: one number per row, long format."""
    for metric, value in model["summary"].items():
        yield "summary", "total", metric, value
    yield from _cost_csv(model["cost"])
    for row in model["latency"]:
        for metric in ("count", "mean", "p50", "p95", "p99"):
            yield "latency", f"{row['backend']}/{row['model']}", metric, row[metric]
    for name, row in model["error_rates"]["by_model"].items():
        yield "error_rate", name, "error_rate", row["error_rate"]
    for session in model["top_sessions"]:
        yield "top_session", session["session_id"], "cost_usd", session["cost_usd"]
    for item in model["insights"]:
        yield "insight", item["category"], "estimated_saving_usd", item["estimated_saving_usd"]


def _cost_csv(cost: Mapping[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    for section in ("cost_by_backend", "cost_by_model"):
        for name, row in cost[section].items():
            for metric in ("cost_usd", "calls", "errors", "input_tokens", "output_tokens"):
                yield section, name, metric, row[metric]
    for metric, value in cost["burn_rate"].items():
        yield "burn_rate", "total", metric, value
    for op in cost["most_expensive_operations"]:
        yield "top_operation", op["call_id"], "cost_usd", op["cost_usd"]


class _Text(list[str]):
    """A write-only text sink for :func:`csv.writer` (the rendering stays in memory)."""

    def write(self, text: str) -> int:
        self.append(text)
        return len(text)


def render_csv(model: Mapping[str, Any]) -> str:
    """Return the report as CSV with the header ``section,name,metric,value``."""
    buffer = _Text()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for section, name, metric, value in csv_rows(model):
        writer.writerow((section, name, metric, "" if value is None else value))
    return "".join(buffer)


# --- Markdown ------------------------------------------------------------------------------


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    if not rows:
        return ["_none_", ""]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_num(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def sections(model: Mapping[str, Any]) -> list[tuple[str, Sequence[str], list[list[Any]]]]:
    """Return the report's tables: (title, header, rows), shared by Markdown and HTML."""
    cost, burn = model["cost"], model["cost"]["burn_rate"]
    return [
        ("Summary", ("metric", "value"), _fields(model["summary"])),
        ("Cost by backend", ("backend", "cost", "calls", "errors"),
         [[b, usd(r["cost_usd"]), r["calls"], r["errors"]]
          for b, r in cost["cost_by_backend"].items()]),
        ("Cost by model", ("model", "cost", "calls", "cost per 1k tokens"),
         [[m, usd(r["cost_usd"]), r["calls"], usd(cost["cost_per_1k_tokens_by_model"].get(m))]
          for m, r in cost["cost_by_model"].items()]),
        ("Burn rate and projection", ("metric", "value"), _fields(burn)),
        ("Most expensive operations", ("call", "backend", "model", "cost", "session"),
         [[o["call_id"], o["backend"], o["model"], usd(o["cost_usd"]), o["session"]]
          for o in cost["most_expensive_operations"]]),
        ("Most expensive sessions", ("session", "cost", "calls", "errors"),
         [[s["session_id"], usd(s["cost_usd"]), s["calls"], s["errors"]]
          for s in model["top_sessions"]]),
        ("Latency by backend and model", ("backend", "model", "calls", "p50", "p95", "p99"),
         [[r["backend"], r["model"], _num(r["weighted_count"]), ms(r["p50"]), ms(r["p95"]),
           ms(r["p99"])] for r in model["latency"]]),
        ("Throughput", ("metric", "value"), _fields(model["throughput"])),
        ("Error rates", ("model", "calls", "errors", "rate"),
         [[m, r["calls"], r["errors"], pct(r["error_rate"])]
          for m, r in model["error_rates"]["by_model"].items()]),
        ("Alerts fired and resolved", ("fingerprint", "rule", "status", "starts", "ends"),
         _alert_rows(model["alerts"])),
        ("Optimization insights", ("priority", "category", "recommendation", "saving"),
         [[i["priority"], i["category"], i["recommendation"], i["potential_improvement"]]
          for i in model["insights"]]),
        ("Anomalies (last hour against the 24 before)", ("series", "value", "baseline", "score"),
         [[a["series"], human(a["series"], a["value"]), human(a["series"], a["baseline_median"]),
           a["score"]] for a in model["anomalies"]]),
    ]  # fmt: skip


def _fields(values: Mapping[str, Any]) -> list[list[Any]]:
    return [[k, human(k, v)] for k, v in values.items() if not isinstance(v, dict | list)]


def _alert_rows(alerts: Mapping[str, Any]) -> list[list[Any]]:
    seen: dict[str, Mapping[str, Any]] = {}
    for item in [*alerts.get("fired", []), *alerts.get("resolved", [])]:
        seen[item["fingerprint"]] = item
    return [
        [fp, a.get("rule"), a.get("status"), a.get("starts_at"), a.get("ends_at")]
        for fp, a in seen.items()
    ]


def _alerts_note(model: Mapping[str, Any]) -> str | None:
    if not model["alerts"].get("history_available"):
        return "No alert history: the alerts worker has recorded no alert state."
    return None


def render_markdown(model: Mapping[str, Any]) -> str:
    """Return the report as Markdown: a heading, the period, then one table per section."""
    period = model["period"]
    lines = [f"# {model['title']}", ""]
    lines += [f"Period: {period['since_iso']} to {period['until_iso']} ({_num(period['hours'])} h)"]
    lines.append("")
    for title, header, rows in sections(model):
        lines += [f"## {title}", ""]
        if title.startswith("Alerts") and _alerts_note(model):
            lines += [str(_alerts_note(model)), ""]
            continue
        lines += _md_table(header, rows)
    return "\n".join(lines)


# --- HTML with inline SVG ------------------------------------------------------------------


def render_html(model: Mapping[str, Any]) -> str:
    """Return a self-contained XHTML-compatible page with the tables and two SVG charts."""
    esc = html.escape
    parts = [
        '<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head>'
        '<meta charset="utf-8"/>',
        f"<title>{esc(model['title'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style></head><body>",
        f"<h1>{esc(model['title'])}</h1>",
        f"<p>Period: {esc(model['period']['since_iso'])} to "
        f"{esc(model['period']['until_iso'])}</p>",
        "<h2>Cost over time by model (USD)</h2>",
        cost_chart(model["charts"]["cost_over_time"]),
        "<h2>Latency percentiles by backend</h2>",
        latency_chart(model["backend_latency"]),
    ]
    for title, header, rows in sections(model):
        parts.append(f"<h2>{esc(title)}</h2>")
        note = _alerts_note(model) if title.startswith("Alerts") else None
        parts.append(f"<p>{esc(note)}</p>" if note else _html_table(header, rows))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(_num(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _svg_open(label: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}" '
        f'viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{html.escape(label)}">',
        f'<line x1="{MARGIN}" y1="{CHART_H - MARGIN}" x2="{CHART_W - 10}" '
        f'y2="{CHART_H - MARGIN}" stroke="#333"/>',
        f'<line x1="{MARGIN}" y1="10" x2="{MARGIN}" y2="{CHART_H - MARGIN}" stroke="#333"/>',
    ]


def _y(value: float, top: float) -> float:
    span = CHART_H - MARGIN - 10
    return CHART_H - MARGIN - (value / top * span if top > 0 else 0.0)


def _legend(i: int, name: str) -> str:
    x, y = MARGIN + 10 + (i % 3) * 190, CHART_H - 28 + (i // 3) * 12
    color = PALETTE[i % len(PALETTE)]
    label = html.escape(name[:30])
    return (
        f'<rect x="{x}" y="{y - 8}" width="8" height="8" fill="{color}"/>'
        f'<text x="{x + 12}" y="{y}" font-size="10">{label}</text>'
    )


def cost_chart(series: Mapping[str, Any]) -> str:
    """Return an SVG line chart of cost per bucket, one line per model."""
    by_model: Mapping[str, Sequence[float]] = series.get("by_model", {})
    n = len(series.get("starts", []))
    top = max((v for points in by_model.values() for v in points), default=0.0)
    parts = [*_svg_open("cost over time by model"),
             f'<text x="4" y="14" font-size="10">{html.escape(usd(top))}</text>']  # fmt: skip
    step = (CHART_W - MARGIN - 20) / max(n - 1, 1)
    for i, (model, points) in enumerate(sorted(by_model.items())):
        coords = " ".join(f"{MARGIN + j * step:.1f},{_y(v, top):.1f}" for j, v in enumerate(points))
        color = PALETTE[i % len(PALETTE)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        parts.append(_legend(i, model))
    parts.append("</svg>")
    return "".join(parts)


def latency_chart(rows: Sequence[Mapping[str, Any]]) -> str:
    """Return an SVG grouped bar chart of p50, p95 and p99 latency per backend."""
    quantiles = ("p50", "p95", "p99")
    top = max((float(r[q]) for r in rows for q in quantiles if r.get(q) is not None), default=0.0)
    parts = [*_svg_open("latency percentiles by backend"),
             f'<text x="4" y="14" font-size="10">{html.escape(ms(top))}</text>']  # fmt: skip
    group_w = (CHART_W - MARGIN - 20) / max(len(rows), 1)
    bar_w = group_w / (len(quantiles) + 1)
    for g, row in enumerate(rows):
        x0 = MARGIN + g * group_w
        for q, name in enumerate(quantiles):
            value = float(row.get(name) or 0.0)
            y = _y(value, top)
            parts.append(
                f'<rect x="{x0 + q * bar_w:.1f}" y="{y:.1f}" width="{bar_w * 0.9:.1f}" '
                f'height="{CHART_H - MARGIN - y:.1f}" fill="{PALETTE[q]}"/>'
            )
        parts.append(f'<text x="{x0:.1f}" y="{CHART_H - MARGIN + 12}" font-size="10">'
                     f"{html.escape(str(row['backend'])[:20])}</text>")  # fmt: skip
    parts += [_legend(i, q) for i, q in enumerate(quantiles)]
    parts.append("</svg>")
    return "".join(parts)
