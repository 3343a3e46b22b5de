"""Performance over a range: latency percentiles per backend and model (merged sketches), a
backend comparison, exact throughput, error rates, the network/processing split and TTFT.

Every section comes from one :class:`~llmtap.read.snapshot.Snapshot` of the range: its buckets
are read once and its sketches merged once per grouping.
"""

from __future__ import annotations

from typing import Any

import redis

from llmtap.read import query, shards
from llmtap.read.bucketcache import BucketCache
from llmtap.read.query import latency_rows_of
from llmtap.read.snapshot import Snapshot
from llmtap.read.window import HOUR


@shards.reads_one_layout
def performance_analysis(
    client: redis.Redis, since: float, until: float, *, cache: BucketCache | None = None
) -> dict[str, Any]:
    """Return ``get_performance_analysis``'s structure for the range ``[since, until)``
    (closed buckets from ``cache`` when given)."""
    return analysis_of(Snapshot.read(client, since, until, cache))


def analysis_of(snap: Snapshot) -> dict[str, Any]:
    """:func:`performance_analysis` from a snapshot."""
    return {
        "timeframe_hours": (snap.until - snap.since) / HOUR,
        "latency": latency_rows_of(snap, "model"),
        "overall": next(iter(latency_rows_of(snap, "all")), None),
        "backend_comparison": _backend_comparison(snap),
        "throughput": _throughput(snap),
        "error_rates": query.error_rate_of(snap),
        "network_vs_processing": _network_split(snap),
        "time_to_first_token": latency_rows_of(snap, "model", "ttft"),
    }


def backend_comparison(client: redis.Redis, since: float, until: float) -> list[dict[str, Any]]:
    """Return each backend's merged percentiles, fastest p95 first, with its ratio to it."""
    return _backend_comparison(Snapshot.read(client, since, until))


def _backend_comparison(snap: Snapshot) -> list[dict[str, Any]]:
    rows = sorted(latency_rows_of(snap, "backend"), key=lambda r: r["p95"])
    fastest = rows[0]["p95"] if rows else None
    for row in rows:
        del row["model"]
        row["p95_vs_fastest"] = row["p95"] / fastest if fastest else None
    return rows


def throughput(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return exact calls per minute and tokens per second, and the mean generation speed."""
    return _throughput(Snapshot.read(client, since, until))


def _throughput(snap: Snapshot) -> dict[str, Any]:
    flow = query.throughput_of(snap)
    total = query.total_of(snap)
    seconds = flow["minutes"] * 60
    overall = latency_rows_of(snap, "all")
    tokens = total["input_tokens"] + total["output_tokens"]
    return {
        "calls": flow["calls"],
        "calls_per_min": flow["calls_per_min"],
        "tokens_per_s": tokens / seconds if seconds else 0.0,
        "output_tokens_per_s": total["output_tokens"] / seconds if seconds else 0.0,
        "generation_tokens_per_s": overall[0]["generation_tokens_per_s"] if overall else None,
        "by_model": flow["by_model"],
    }


def network_split(client: redis.Redis, since: float, until: float) -> list[dict[str, Any]]:
    """Return per (backend, model) the mean network and processing time and the network share."""
    return _network_split(Snapshot.read(client, since, until))


def _network_split(snap: Snapshot) -> list[dict[str, Any]]:
    network = _means(snap, "network")
    processing = _means(snap, "processing")
    out = []
    for backend, model in sorted(network.keys() | processing.keys()):
        net, proc = network.get((backend, model)), processing.get((backend, model))
        both = net is not None and proc is not None and net + proc > 0
        out.append(
            {
                "backend": backend,
                "model": model,
                "network_mean_s": net,
                "processing_mean_s": proc,
                "network_share": net / (net + proc) if both else None,  # type: ignore[operator]
            }
        )
    return out


def _means(snap: Snapshot, timing: str) -> dict[tuple[str, str], float | None]:
    rows = latency_rows_of(snap, "model", timing)
    return {(r["backend"], r["model"]): r["mean"] for r in rows}
