"""The original profiler's nine tool functions over the read side's topic modules, and
:class:`ProfilingTools`, which binds a client and caches the expensive answers.

Names, arguments and JSON shapes follow the original (``get_profiling_status`` ...
``export_performance_report``); each takes the Redis client first and, where time matters,
``now`` (Unix seconds; default: the clock). Numbers are exact where the aggregates are (cost,
calls, errors and tokens come from the producers' rollups) and estimated from the weighted
sketches where they are not (latency percentiles). :class:`ProfilingTools` caches for
``cache_ttl_s`` (60 s, as in the original).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import redis

from llmtap.read import admin, cost, dashboard, insights, performance, report, sessions, status
from llmtap.read.bucketcache import BucketCache
from llmtap.read.window import hours_back as _window
from llmtap.settings import Settings

__all__ = [
    "ProfilingTools",
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


def get_profiling_status(client: redis.Redis, settings: Settings | None = None) -> dict[str, Any]:
    """Return the settings producers run with, their exact statistics and pipeline health.

    ``enabled``, ``level`` and ``sampling_rate`` are what the live producers report when they
    agree, else the configured settings; ``producers`` lists each producer's settings and
    statistics and ``settings_disagreements`` flags every difference (see
    :func:`llmtap.read.status.profiling_status`). ``profiling_rate`` is a fraction.
    """
    return status.profiling_status(client, settings)


def get_performance_dashboard(
    client: redis.Redis,
    hours_back: float = 24,
    include_cache_stats: bool = True,
    *,
    now: float | None = None,
    settings: Settings | None = None,
    cache: BucketCache | None = None,
) -> dict[str, Any]:
    """Return the dashboard: metadata, cost, performance, efficiency and alerts of the window.

    ``total_metrics_analyzed`` counts the call events behind the latency numbers; the cost,
    call and token numbers are exact (rollups). Cache statistics are added by
    :class:`ProfilingTools` (a bare call has no cache: ``{"enabled": false}``). With ``cache``
    (here and in the other range tools), closed buckets are read from it, not from Redis.
    """
    _, until = _window(hours_back, now)
    out = dashboard.dashboard(client, hours_back, until, settings, cache=cache)
    if include_cache_stats:
        out["cache_stats"] = {"enabled": False}
    return out


def get_cost_analysis_data(
    client: redis.Redis,
    hours_back: float = 24,
    *,
    monthly_budget_usd: float | None = None,
    top_n: int = 10,
    now: float | None = None,
    cache: BucketCache | None = None,
) -> dict[str, Any]:
    """Return cost by backend, model, tenant and session, cost per 1k tokens by model, the
    burn rate and month-end projection, and the most expensive operations of the window."""
    since, until = _window(hours_back, now)
    return cost.cost_analysis(client, since, until, monthly_budget_usd, top_n, cache=cache)


def get_performance_analysis(
    client: redis.Redis,
    hours_back: float = 24,
    *,
    now: float | None = None,
    cache: BucketCache | None = None,
) -> dict[str, Any]:
    """Return p50/p95/p99 per backend and model, a backend comparison, throughput, error
    rates, the network/processing split and time to first token over the window."""
    return performance.performance_analysis(client, *_window(hours_back, now), cache=cache)


def get_optimization_insights(
    client: redis.Redis,
    hours_back: float = 168,
    *,
    now: float | None = None,
    context_windows: Mapping[str, int] | None = None,
    cache: BucketCache | None = None,
) -> dict[str, Any]:
    """Return recommendations [{priority, category, recommendation, potential_improvement,
    evidence, estimated_saving_usd, estimated_saving_s}] and the current anomalies.

    Context windows come from the pricing catalogue and a shipped table of local models
    (:mod:`llmtap.read.context`); ``context_windows`` (model name -> tokens) override them.
    """
    since, until = _window(hours_back, now)
    return insights.optimization_insights(client, since, until, context_windows, cache=cache)


def get_session_profiling_analysis(
    client: redis.Redis, session_id: str, *, limit: int | None = None
) -> dict[str, Any]:
    """Return one session's summary (exact calls, cost, success rate from rollups), its
    timeline of call events (oldest first, the newest ``limit``) and backend/thread usage.

    ``found`` is false when the sessions worker has nothing for this id (or it expired).
    """
    return sessions.session_analysis(client, session_id, limit)


def configure_profiling_settings(
    client: redis.Redis, *, base: Settings | None = None, **changes: bool | float | str | None
) -> dict[str, Any]:
    """Validate ``changes`` (runtime settings by name; None values are ignored), write them to
    the runtime-settings hash every producer polls, and return the effective settings.

    Raises SettingsError, writing nothing, for an unknown name or a bad value.
    """
    return admin.configure(client, base, changes)


def reset_profiling_metrics(client: redis.Redis, confirm: bool = False) -> dict[str, Any]:
    """Delete llmtap's aggregates and state and empty its streams, only with ``confirm``.

    Without confirmation nothing changes and the answer lists what would go. Keys are found
    with SCAN on the ``llmtap:`` prefix. Streams are trimmed to zero entries rather than
    deleted, so running workers keep their consumer groups; the runtime settings and live
    workers' heartbeats are kept.
    """
    return admin.reset(client, confirm)


def export_performance_report(
    client: redis.Redis,
    hours_back: float = 24,
    format: str = "json",
    output_path: str | None = None,
    *,
    now: float | None = None,
    settings: Settings | None = None,
    cache: BucketCache | None = None,
) -> dict[str, Any]:
    """Build the report of the last ``hours_back`` hours, render it as ``format`` (md, html,
    json or csv) and, with ``output_path``, write it there. Returns the rendered content,
    its format, the period and the path. Raises ValueError for an unknown format.
    """
    since, until = _window(hours_back, now)
    return report.export_report(client, since, until, format, output_path, settings, cache=cache)


class ProfilingTools:
    """The nine tools bound to one client, with the expensive results cached ``cache_ttl_s``.

    ``clock`` gives Unix seconds (tests pass a frozen one); a cached answer is reused while it
    is younger than the TTL and was asked with the same arguments.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        settings: Settings | None = None,
        cache_ttl_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.settings = settings
        self.cache_ttl_s = cache_ttl_s
        self.clock = clock
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self.hits = 0
        self.misses = 0

    def cache_stats(self) -> dict[str, Any]:
        """Return the cache's hits, misses, entries and TTL."""
        return {"enabled": True, "hits": self.hits, "misses": self.misses,
                "entries": len(self._cache), "ttl_s": self.cache_ttl_s}  # fmt: skip

    def clear_cache(self) -> None:
        """Forget every cached answer."""
        self._cache.clear()

    def _cached(self, key: tuple[Any, ...], compute: Callable[[float], Any]) -> Any:
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_ttl_s:
            self.hits += 1
            return hit[1]
        self.misses += 1
        value = compute(now)
        self._cache[key] = (now, value)
        return value

    def get_profiling_status(self) -> dict[str, Any]:
        """See :func:`get_profiling_status` (not cached: it is cheap and should be live)."""
        return get_profiling_status(self.client, self.settings)

    def get_performance_dashboard(
        self, hours_back: float = 24, include_cache_stats: bool = True
    ) -> dict[str, Any]:
        """See :func:`get_performance_dashboard`; cached."""
        out: dict[str, Any] = self._cached(
            ("dashboard", hours_back),
            lambda now: get_performance_dashboard(
                self.client, hours_back, False, now=now, settings=self.settings
            ),
        )
        return {**out, "cache_stats": self.cache_stats()} if include_cache_stats else out

    def get_cost_analysis_data(
        self, hours_back: float = 24, monthly_budget_usd: float | None = None
    ) -> dict[str, Any]:
        """See :func:`get_cost_analysis_data`; cached."""
        return dict(
            self._cached(
                ("cost", hours_back, monthly_budget_usd),
                lambda now: get_cost_analysis_data(
                    self.client, hours_back, monthly_budget_usd=monthly_budget_usd, now=now
                ),
            )
        )

    def get_performance_analysis(self, hours_back: float = 24) -> dict[str, Any]:
        """See :func:`get_performance_analysis`; cached."""
        return dict(
            self._cached(
                ("performance", hours_back),
                lambda now: get_performance_analysis(self.client, hours_back, now=now),
            )
        )

    def get_optimization_insights(self, hours_back: float = 168) -> dict[str, Any]:
        """See :func:`get_optimization_insights`; cached."""
        return dict(
            self._cached(
                ("insights", hours_back),
                lambda now: get_optimization_insights(self.client, hours_back, now=now),
            )
        )

    def get_session_profiling_analysis(self, session_id: str) -> dict[str, Any]:
        """See :func:`get_session_profiling_analysis` (not cached)."""
        return get_session_profiling_analysis(self.client, session_id)

    def configure_profiling_settings(self, **changes: bool | float | str | None) -> dict[str, Any]:
        """See :func:`configure_profiling_settings`; clears the cache."""
        self.clear_cache()
        return configure_profiling_settings(self.client, base=self.settings, **changes)

    def reset_profiling_metrics(self, confirm: bool = False) -> dict[str, Any]:
        """See :func:`reset_profiling_metrics`; clears the cache when it deletes."""
        if confirm:
            self.clear_cache()
        return reset_profiling_metrics(self.client, confirm)

    def export_performance_report(
        self,
        hours_back: float = 24,
        format: str = "json",
        output_path: str | None = None,
    ) -> dict[str, Any]:
        """See :func:`export_performance_report` (not cached)."""
        return export_performance_report(
            self.client, hours_back, format, output_path, now=self.clock(), settings=self.settings
        )
