"""The report of a range: the data model every rendering and delivery starts from (cost,
performance, insights, alerts, the cost series and top sessions), and its export to a file.

Every section is built from one :class:`~llmtap.read.snapshot.Snapshot` of the range."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
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

TOP_N = 10  # the most expensive calls a report lists


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
    # The sections that do not read the snapshot run beside it, in a second thread on a second
    # connection: their round trips overlap the snapshot's reads and decoding.
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = contextvars.copy_context().run
        beside = pool.submit(run, _beside, client, since, until, current, monthly_budget_usd)
        snap = Snapshot.read(client, since, until, cache)
        performance_analysis = performance.analysis_of(snap)
        alerts, series, found, cost_reads = beside.result()
    return report.build_report(
        since=since,
        until=until,
        cost=cost.analysis_of(snap, monthly_budget_usd, top_n=TOP_N, read=cost_reads),
        performance=performance_analysis,
        insights=insights.insights_of(snap, found=found),
        alerts=alerts,
        cost_series=series,
        top_sessions=cost.top_sessions_of(snap),
    )


def _beside(
    client: redis.Redis,
    since: float,
    until: float,
    current: Settings,
    monthly_budget_usd: float | None,
) -> tuple[
    dict[str, Any],
    dict[str, Any],
    list[dict[str, Any]],
    tuple[dict[str, Any], list[dict[str, Any]]],
]:
    """The report's reads that do not need the snapshot: alerts, the cost series, the anomalies,
    the month projection and the most expensive calls."""
    return (
        alerts_summary(client, since, until, current),
        cost.cost_series(client, since, until),
        insights.anomalies(client, until),
        cost.own_reads(client, since, until, monthly_budget_usd, TOP_N),
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
