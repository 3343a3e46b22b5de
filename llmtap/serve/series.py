"""The time series behind the dashboard's charts, over the read side's public functions: the
range cut into aligned slices, each slice's calls, errors and latency percentiles."""

from __future__ import annotations

import itertools
import math
from typing import Any, Final

import redis

from llmtap.read import query
from llmtap.read.cost import cost_series
from llmtap.read.window import DAY, HOUR

# Slice length for a range of up to N hours: about 12-30 points per chart.
_STEPS: Final = ((1, 300), (6, 900), (48, HOUR), (7 * 24, 6 * HOUR), (math.inf, DAY))
_GROUPINGS: Final = ("all", "backend", "model")


def step_for(hours: float) -> int:
    """Return the slice length in seconds for a range of ``hours``."""
    return next(step for limit, step in _STEPS if hours <= limit)


def slices(since: float, until: float) -> list[tuple[float, float]]:
    """Return ``[since, until)`` cut at multiples of the step (the last slice may be short)."""
    step = step_for((until - since) / HOUR)
    first = math.floor(since / step) * step
    edges = [since, *range(int(first) + step, math.ceil(until), step), until]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def timeseries(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return per slice: start, calls, errors, cost, and p50/p95/p99 latency overall, per
    backend and per model (``None`` where a slice has no call events)."""
    cuts = slices(since, until)
    points: list[dict[str, Any]] = []
    latency: dict[str, dict[str, list[dict[str, Any] | None]]] = {g: {} for g in _GROUPINGS}
    for i, (start, end) in enumerate(cuts):
        total = query.total(client, start, end)
        points.append(
            {
                "start": start,
                "end": end,
                "calls": total["calls"],
                "errors": total["errors"],
                "cost_usd": total["cost_usd"],
            }
        )
        for grouping in _GROUPINGS:
            for row in query.latency_rows(client, start, end, grouping):
                name = _name(row, grouping)
                line = latency[grouping].setdefault(name, [None] * len(cuts))
                line[i] = {"p50": row["p50"], "p95": row["p95"], "p99": row["p99"]}
    return {
        "since": since,
        "until": until,
        "step_s": step_for((until - since) / HOUR),
        "points": points,
        "latency": latency,
        "cost": cost_series(client, since, until),
    }


def _name(row: dict[str, Any], grouping: str) -> str:
    if grouping == "all":
        return "all"
    if grouping == "backend":
        return str(row["backend"])
    return f"{row['backend']}/{row['model']}"
