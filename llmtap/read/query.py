"""Reads the workers' aggregates over a time range and returns plain, JSON-ready structures.

Every function takes the Redis client and the range ``[since, until)`` (Unix seconds; the caller
passes "now", there is no hidden clock). The range is widened to whole minutes and covered with
the fewest buckets: whole UTC days, then quarter days, hours, ten minutes, and minutes at the
edges (see :func:`cover`). Buckets older than their retention are gone, so a range that
reaches past the minute retention (2 days by default) counts only the hours and days at its
old edge.
Costs are stored in integer nano-USD and returned both exact (``cost_nanousd``) and in USD.

Each function reads its range once (:class:`~llmtap.read.snapshot.Snapshot`); the ``*_of``
functions answer from a snapshot already read, so a view showing several answers of one range
reads it once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

import redis

from llmtap import aggregates
from llmtap.aggregates import DIMENSIONS, TIMINGS
from llmtap.read.snapshot import Bucket, Snapshot, cover, empty_row

__all__ = [
    "LATENCY_GROUPINGS",
    "QUANTILES",
    "Bucket",
    "cost_by",
    "cover",
    "error_rate",
    "latency_percentiles",
    "latency_rows",
    "throughput",
    "total",
]

LATENCY_GROUPINGS: Final = ("model", "backend", "all")
QUANTILES: Final = (0.5, 0.95, 0.99)  # the percentiles the tool functions report

T = TypeVar("T")


def cost_by(
    client: redis.Redis, dimension: str, since: float, until: float
) -> dict[str, dict[str, Any]]:
    """Return cost and usage per value of ``dimension`` (``total`` gives one ``total`` row).

    Each row: ``cost_nanousd`` (exact), ``cost_usd``, and every usage metric (calls, errors,
    tokens by kind, unpriced calls). Raises ValueError for an unknown dimension.
    """
    _check_dimension(dimension)
    return Snapshot.read(client, since, until).cost_by(dimension)


def cost_by_of(snap: Snapshot, dimension: str) -> dict[str, dict[str, Any]]:
    """:func:`cost_by` from a snapshot. Raises ValueError for an unknown dimension."""
    _check_dimension(dimension)
    return snap.cost_by(dimension)


def total(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return the ``total`` row of :func:`cost_by` (zeros when nothing was counted)."""
    return total_of(Snapshot.read(client, since, until))


def total_of(snap: Snapshot) -> dict[str, Any]:
    """:func:`total` from a snapshot."""
    row = snap.cost_by(aggregates.TOTAL).get(aggregates.TOTAL)
    return row if row is not None else {"cost_usd": 0.0, **empty_row()}


def throughput(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return exact calls (from rollups) over the range, per minute, in total and per model."""
    return throughput_of(Snapshot.read(client, since, until))


def throughput_of(snap: Snapshot) -> dict[str, Any]:
    """:func:`throughput` from a snapshot."""
    minutes = snap.minutes
    calls = snap.usage.get(aggregates.usage_field(aggregates.TOTAL, "calls"), 0)
    by_model = _split(_metric(snap.usage, "calls"), "model")
    return {
        "calls": calls,
        "minutes": minutes,
        "calls_per_min": calls / minutes if minutes else 0.0,
        "by_model": {m: {"calls": c, "calls_per_min": c / minutes} for m, c in by_model.items()},
    }


def error_rate(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return calls, errors and their ratio over the range: total, per backend, per model."""
    return error_rate_of(Snapshot.read(client, since, until))


def error_rate_of(snap: Snapshot) -> dict[str, Any]:
    """:func:`error_rate` from a snapshot."""
    calls, errors = _metric(snap.usage, "calls"), _metric(snap.usage, "errors")
    rows = {dim: _rate(calls.get(dim, 0), errors.get(dim, 0)) for dim in calls}
    return {
        **rows.get(aggregates.TOTAL, _rate(0, 0)),
        "by_backend": _split(rows, "backend"),
        "by_model": _split(rows, "model"),
    }


def latency_percentiles(
    client: redis.Redis,
    since: float,
    until: float,
    qs: Sequence[float] = (0.5, 0.9, 0.95, 0.99),
    timing: str = "latency",
    by: str = "model",
) -> list[dict[str, Any]]:
    """Return, per (backend, model), the merged sketch's quantiles of ``timing`` (seconds).

    Each row: backend, model, ``count`` (events), ``weighted_count`` (estimated calls), mean,
    min, max, ``p50``... (keys ``p`` + the quantile times 100) and mean output tokens/s.
    ``by="backend"`` merges the models of each backend (model ``*``), ``by="all"`` everything
    (backend and model ``*``). Raises ValueError for an unknown timing or grouping.
    """
    _check_latency(timing, by)
    return latency_percentiles_of(Snapshot.read(client, since, until), qs, timing, by)


def latency_percentiles_of(
    snap: Snapshot,
    qs: Sequence[float] = (0.5, 0.9, 0.95, 0.99),
    timing: str = "latency",
    by: str = "model",
) -> list[dict[str, Any]]:
    """:func:`latency_percentiles` from a snapshot (its sketches are merged once per ``by``)."""
    _check_latency(timing, by)
    out = []
    for row in snap.merged(by).rows(qs, timing):
        backend, model = row.pop("group")
        out.append({"backend": backend, "model": model, **row})
    return out


def latency_rows(
    client: redis.Redis, since: float, until: float, by: str, timing: str = "latency"
) -> list[dict[str, Any]]:
    """Return :func:`latency_percentiles` at QUANTILES, with None for the infinite min/max of
    an empty timing (JSON has no infinity)."""
    return latency_rows_of(Snapshot.read(client, since, until), by, timing)


def latency_rows_of(snap: Snapshot, by: str, timing: str = "latency") -> list[dict[str, Any]]:
    """:func:`latency_rows` from a snapshot."""
    return [_finite(row) for row in latency_percentiles_of(snap, QUANTILES, timing, by)]


def _check_dimension(dimension: str) -> None:
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}; known: {', '.join(DIMENSIONS)}")


def _check_latency(timing: str, by: str) -> None:
    if timing not in TIMINGS:
        raise ValueError(f"unknown timing {timing!r}; known: {', '.join(TIMINGS)}")
    if by not in LATENCY_GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}; known: {', '.join(LATENCY_GROUPINGS)}")


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and abs(v) == float("inf") else v) for k, v in row.items()
    }


def _metric(usage: Mapping[str, int], metric: str) -> dict[str, int]:
    """Return dimension -> value of one metric of summed usage fields."""
    out: dict[str, int] = {}
    for field, value in usage.items():
        dim, name = aggregates.split_usage_field(field)
        if name == metric:
            out[dim] = value
    return out


def _rate(calls: int, errors: int) -> dict[str, Any]:
    return {"calls": calls, "errors": errors, "error_rate": errors / calls if calls else 0.0}


def _split(rows: Mapping[str, T], kind: str) -> dict[str, T]:
    """Return the rows of one dimension kind, by value."""
    out: dict[str, T] = {}
    for dim, row in rows.items():
        found, name = aggregates.split_dimension(dim)
        if found == kind:
            out[name] = row
    return out
