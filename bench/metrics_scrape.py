"""Benchmark a /metrics scrape over a day of aggregates, against the tool functions that
answer the same numbers (cost analysis and performance analysis of the month) in the same run.

Starts its own embedded Valkey, writes ``--events`` synthetic events spread over the last day
(this month), drains them with the cost and latency workers, then times ``--scrapes`` scrapes
and as many baseline reads. CPU counts this process and the Valkey server (INFO cpu deltas).
Prints one JSON object on its last line.

    python bench/metrics_scrape.py [--events 1000000] [--scrapes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import redis
from prometheus_client import generate_latest

from llmtap import tools
from llmtap.connectors.prometheus import MetricsConfig, registry
from llmtap.consumers import service
from llmtap.embedded import EmbeddedValkey
from llmtap.read.metrics import month_start
from llmtap.testing import Workload


def server_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(client: redis.Redis, run: Callable[[], Any], n: int) -> dict[str, float]:
    walls, cpus = [], []
    for _ in range(n):
        wall, cpu, server = time.perf_counter(), time.process_time(), server_cpu(client)
        run()
        cpus.append(time.process_time() - cpu + server_cpu(client) - server)
        walls.append(time.perf_counter() - wall)
    return {"wall_s_median": statistics.median(walls), "cpu_s_median": statistics.median(cpus)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=5)
    args = parser.parse_args()
    now = time.time()
    start = max(float(month_start(now)), now - 86_400)
    with EmbeddedValkey() as server:
        client = redis.Redis.from_url(server.url)
        workload = Workload(7, start=start, span_s=now - start - 60, producer_id="bench")
        workload.write(client, args.events)
        print(f"wrote {args.events} events; draining", file=sys.stderr, flush=True)
        asyncio.run(service.run_burst(server.url, ["cost", "latency"]))
        reg = registry(client, MetricsConfig())
        body = generate_latest(reg)
        hours = (now - month_start(now)) / 3600 + 1

        def baseline() -> None:
            tools.get_cost_analysis_data(client, hours)
            tools.get_performance_analysis(client, hours)

        scrape = measure(client, lambda: generate_latest(reg), args.scrapes)
        base = measure(client, baseline, args.scrapes)
        print(
            json.dumps(
                {
                    "events": args.events,
                    "calls_exact": workload.truth.calls,
                    "keys": client.dbsize(),
                    "exposition_bytes": len(body),
                    "series": sum(1 for line in body.splitlines() if not line.startswith(b"#")),
                    "scrape": scrape,
                    "tools_baseline": base,
                    "scrape_vs_tools_wall": scrape["wall_s_median"] / base["wall_s_median"],
                    "scrape_vs_tools_cpu": scrape["cpu_s_median"] / base["cpu_s_median"],
                }
            )
        )


if __name__ == "__main__":
    main()
