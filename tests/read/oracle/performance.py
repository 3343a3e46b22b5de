"""Performance over a range: latency percentiles per backend and model (merged sketches), a
backend comparison, exact throughput, error rates, the network/processing split and TTFT."""

from __future__ import annotations

from typing import Any

import redis

from llmtap.read.window import HOUR
from tests.read.oracle import query
from tests.read.oracle.query import latency_rows


def performance_analysis(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return ``get_performance_analysis``'s structure for the range ``[since, until)``."""
    return {
        "timeframe_hours": (until - since) / HOUR,
        "latency": latency_rows(client, since, until, "model"),
        "overall": next(iter(latency_rows(client, since, until, "all")), None),
        "backend_comparison": backend_comparison(client, since, until),
        "throughput": throughput(client, since, until),
        "error_rates": query.error_rate(client, since, until),
        "network_vs_processing": network_split(client, since, until),
        "time_to_first_token": latency_rows(client, since, until, "model", "ttft"),
    }


def backend_comparison(client: redis.Redis, since: float, until: float) -> list[dict[str, Any]]:
    """Return each backend's merged percentiles, fastest p95 first, with its ratio to it."""
    rows = sorted(latency_rows(client, since, until, "backend"), key=lambda r: r["p95"])
    fastest = rows[0]["p95"] if rows else None
    for row in rows:
        del row["model"]
        row["p95_vs_fastest"] = row["p95"] / fastest if fastest else None
    return rows


def throughput(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Return exact calls per minute and tokens per second, and the mean generation speed."""
    flow = query.throughput(client, since, until)
    total = query.total(client, since, until)
    seconds = flow["minutes"] * 60
    overall = latency_rows(client, since, until, "all")
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
    network = _means(client, since, until, "network")
    processing = _means(client, since, until, "processing")
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


def _means(
    client: redis.Redis, since: float, until: float, timing: str
) -> dict[tuple[str, str], float | None]:
    rows = latency_rows(client, since, until, "model", timing)
    return {(r["backend"], r["model"]): r["mean"] for r in rows}
