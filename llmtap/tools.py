"""The original profiler's nine tool functions: a stable name for :mod:`llmtap.read.tools`."""

from llmtap.read.alerts import alerts_summary
from llmtap.read.tools import (
    ProfilingTools,
    configure_profiling_settings,
    export_performance_report,
    get_cost_analysis_data,
    get_optimization_insights,
    get_performance_analysis,
    get_performance_dashboard,
    get_profiling_status,
    get_session_profiling_analysis,
    reset_profiling_metrics,
)

__all__ = [
    "ProfilingTools",
    "alerts_summary",
    "configure_profiling_settings",
    "export_performance_report",
    "get_cost_analysis_data",
    "get_optimization_insights",
    "get_performance_analysis",
    "get_performance_dashboard",
    "get_profiling_status",
    "get_session_profiling_analysis",
    "reset_profiling_metrics",
]
