"""The report of a range: the data model every rendering and delivery starts from (cost,
performance, insights, alerts, the cost series and top sessions), and its export to a file.

Every section is built from one :class:`~llmtap.read.snapshot.Snapshot` of the range."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from llmtap.analyzers import report
from llmtap.read import cost, insights, performance, shards
from llmtap.read.admin import effective_settings
from llmtap.read.alerts import alerts_summary
from llmtap.read.bucketcache import BucketCache
from llmtap.read.snapshot import Snapshot
from llmtap.settings import Settings


@shards.reads_one_layout
def get_report_data(
    client: redis.Redis,
    since: float,
    until: float,
    *,
    settings: Settings | None = None,
    monthly_budget_usd: float | None = None,
    cache: BucketCache | None = None,
) -> dict[str, Any]:
    """Return the report model for ``[since, until)`` (see :func:`report.build_report`;
    closed buckets from ``cache`` when given)."""
    current = effective_settings(client, settings)
    snap = Snapshot.read(client, since, until, cache)
    return report.build_report(
        since=since,
        until=until,
        cost=cost.analysis_of(snap, monthly_budget_usd, top_n=10),
        performance=performance.analysis_of(snap),
        insights=insights.insights_of(snap),
        alerts=alerts_summary(client, since, until, current),
        cost_series=cost.cost_series(client, since, until),
        top_sessions=cost.top_sessions_of(snap),
    )


def export_report(
    client: redis.Redis,
    since: float,
    until: float,
    format: str,
    output_path: str | None = None,
    settings: Settings | None = None,
    *,
    cache: BucketCache | None = None,
) -> dict[str, Any]:
    """Render the report of ``[since, until)`` as ``format`` and, with ``output_path``, write it
    there; return ``export_performance_report``'s answer. Raises ValueError for a bad format."""
    model = get_report_data(client, since, until, settings=settings, cache=cache)
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
