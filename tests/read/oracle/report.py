"""The report of a range: the data model every rendering and delivery starts from (cost,
performance, insights, alerts, the cost series and top sessions), and its export to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from llmtap.analyzers import report
from llmtap.read.admin import effective_settings
from llmtap.read.alerts import alerts_summary
from llmtap.settings import Settings
from tests.read.oracle.cost import cost_analysis, cost_series, top_sessions
from tests.read.oracle.insights import optimization_insights
from tests.read.oracle.performance import performance_analysis


def get_report_data(
    client: redis.Redis,
    since: float,
    until: float,
    *,
    settings: Settings | None = None,
    monthly_budget_usd: float | None = None,
) -> dict[str, Any]:
    """Return the report model for ``[since, until)`` (see :func:`report.build_report`)."""
    current = effective_settings(client, settings)
    return report.build_report(
        since=since,
        until=until,
        cost=cost_analysis(client, since, until, monthly_budget_usd, top_n=10),
        performance=performance_analysis(client, since, until),
        insights=optimization_insights(client, since, until),
        alerts=alerts_summary(client, since, until, current),
        cost_series=cost_series(client, since, until),
        top_sessions=top_sessions(client, since, until),
    )


def export_report(
    client: redis.Redis,
    since: float,
    until: float,
    format: str,
    output_path: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Render the report of ``[since, until)`` as ``format`` and, with ``output_path``, write it
    there; return ``export_performance_report``'s answer. Raises ValueError for a bad format."""
    model = get_report_data(client, since, until, settings=settings)
    content = report.render(model, format)
    if output_path is not None:
        Path(output_path).write_text(content, encoding="utf-8")
    return {
        "format": format,
        "generated_at": model["generated_at"],
        "period": model["period"],
        "path": output_path,
        "summary": model["summary"],
        "content": content,
    }
