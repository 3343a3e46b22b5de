"""The tool functions over the oracle modules, with the arguments of :mod:`llmtap.read.tools`."""

from __future__ import annotations

from typing import Any

import redis

from llmtap.read.window import hours_back
from tests.read.oracle import cost, dashboard, insights, performance, report, status


def get_profiling_status(client: redis.Redis) -> dict[str, Any]:
    """The oracle's ``get_profiling_status``."""
    return status.profiling_status(client)


def get_performance_dashboard(client: redis.Redis, hours: float, now: float) -> dict[str, Any]:
    """The oracle's ``get_performance_dashboard`` (without cache statistics)."""
    return dashboard.dashboard(client, hours, now)


def get_cost_analysis_data(client: redis.Redis, hours: float, now: float) -> dict[str, Any]:
    """The oracle's ``get_cost_analysis_data``."""
    return cost.cost_analysis(client, *hours_back(hours, now))


def get_performance_analysis(client: redis.Redis, hours: float, now: float) -> dict[str, Any]:
    """The oracle's ``get_performance_analysis``."""
    return performance.performance_analysis(client, *hours_back(hours, now))


def get_optimization_insights(client: redis.Redis, hours: float, now: float) -> dict[str, Any]:
    """The oracle's ``get_optimization_insights``."""
    return insights.optimization_insights(client, *hours_back(hours, now))


def export_performance_report(
    client: redis.Redis, hours: float, now: float, format: str = "json"
) -> dict[str, Any]:
    """The oracle's ``export_performance_report``."""
    return report.export_report(client, *hours_back(hours, now), format)
