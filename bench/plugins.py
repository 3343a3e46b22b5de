"""Benchmark what the plugin API costs: a plugin worker (the example cost-by-tag, confined to
its key prefix) against the same analyzer unconfined and the raw XREADGROUP + XACK loop, and
CostCalculator.cost with a custom cost model against the catalogue alone, all in one run.

Starts its own embedded Valkey and writes a tagged synthetic stream. Each drain is exactly once
(Lua commit, plain loop engine) and counts all the CPU: this process's and the server's (INFO
cpu). Ratios are taken within each repeat, then the median. Prints progress, then one JSON
object on its last line.

    python bench/plugins.py [--events 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import redis
import redis.asyncio as aredis
from llmtap_cost_by_tag.analyzer import WORKER

from llmtap import events, keys
from llmtap.analyzers.pricing import CallUsage, CostCalculator
from llmtap.consumers import registry
from llmtap.consumers.runtime import engine
from llmtap.consumers.runtime.config import RuntimeConfig
from llmtap.consumers.runtime.consumer import Consumer
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.embedded import EmbeddedValkey
from llmtap.plugin import Worker
from llmtap.settings import Settings
from llmtap.testing import Workload

PLUGIN = "cost-by-tag"


class Tagged(Workload):
    """A workload whose calls carry one of three ``feature`` tags."""

    def __init__(self, seed: int, span_s: float) -> None:
        super().__init__(seed, span_s=span_s)
        self.tag_rng = random.Random(seed)

    def call(self, ts: float) -> events.CallEvent:
        feature = self.tag_rng.choice(("search", "chat", "summarize"))
        return msgspec.structs.replace(super().call(ts), tags={"feature": feature})


def server_cpu(client: redis.Redis) -> float:
    """Seconds of CPU the server has used (user + system)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def reset(client: redis.Redis, group: str) -> None:
    """Forget a group, its counters and the plugin's keys, so the next drain starts over."""
    client.xgroup_destroy(keys.EVENTS, group)
    client.delete(keys.stats(group))
    for key in client.scan_iter(f"{keys.PLUGIN_PREFIX}:*"):
        client.delete(key)


async def _drain(url: str, worker: Worker, ctx: WorkerContext) -> int:
    client = aredis.Redis.from_url(url)
    consumer = Consumer(client, lambda: worker.build(ctx), ctx.runtime)
    await engine.run_loop(consumer, asyncio.Event(), burst=True)
    await client.aclose()
    return consumer.totals.processed


async def _raw(url: str) -> int:
    client = aredis.Redis.from_url(url)
    await client.xgroup_create(keys.EVENTS, "bench-raw", id="0")
    n = 0
    while reply := await client.xreadgroup("bench-raw", "raw", {keys.EVENTS: ">"}, count=1000):
        ids = [entry_id for entry_id, _ in reply[0][1]]
        await client.xack(keys.EVENTS, "bench-raw", *ids)
        n += len(ids)
    await client.aclose()
    return n


def measure(
    client: redis.Redis, run: Callable[[], int], group: str, expected: int
) -> tuple[float, float]:
    """Return (wall seconds, CPU seconds of this process plus the server) of one drain, after
    checking it processed ``expected`` items."""
    cpu0, server0, wall0 = time.process_time(), server_cpu(client), time.perf_counter()
    done = run()
    wall = time.perf_counter() - wall0
    if done != expected:
        raise SystemExit(f"{group}: processed {done} of {expected}")
    cpu = time.process_time() - cpu0 + server_cpu(client) - server0
    reset(client, group)
    return wall, cpu


def drains(url: str, client: redis.Redis, n_events: int) -> dict[str, float]:
    """One repeat: the raw loop, the plugin unconfined, the plugin as llmtap runs it."""
    ctx = WorkerContext.from_environ(url, {}, settings=Settings(), runtime=RuntimeConfig())
    confined = registry.spec(PLUGIN)
    out: dict[str, float] = {}
    entries = client.xlen(keys.EVENTS)
    for label, run, group, expected in (
        ("raw", lambda: asyncio.run(_raw(url)), "bench-raw", entries),
        ("unconfined", lambda: asyncio.run(_drain(url, WORKER, ctx)), PLUGIN, n_events),
        ("plugin", lambda: asyncio.run(_drain(url, confined, ctx)), PLUGIN, n_events),
    ):
        wall, cpu = measure(client, run, group, expected)
        out[f"{label}_events_per_s"] = n_events / wall
        out[f"{label}_cpu_us_per_event"] = cpu / n_events * 1e6
        print(f"{label}: {n_events / wall:,.0f} events/s, {cpu:.2f} CPU s", file=sys.stderr)
    return out


def pricing_ns() -> dict[str, float]:
    """Median ns per CostCalculator.cost: catalogue alone, a flat model, a discount model."""
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def discount(usage: CallUsage) -> float | None:
        listed = usage.catalogue_usd()
        return None if listed is None else listed * 0.8

    calculators = {
        "catalogue": CostCalculator(at=at),
        "flat_model": CostCalculator(at=at, model=lambda usage: 0.001),
        "discount_model": CostCalculator(at=at, model=discount),
    }
    samples: dict[str, list[float]] = {name: [] for name in calculators}
    for _ in range(9):  # interleaved rounds: a loaded machine affects every variant alike
        for name, calc in calculators.items():
            cost = calc.cost
            start = time.process_time_ns()
            for _ in range(20_000):
                cost("openai", "gpt-4o-mini", 1000, 200, 0, 0, 0, 1.5)
            samples[name].append((time.process_time_ns() - start) / 20_000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    """Run the benchmark; print one JSON object on the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with EmbeddedValkey() as server:
        client = redis.Redis.from_url(server.url)
        Tagged(5, span_s=args.events / 20_000).write(client, args.events)
        runs = [drains(server.url, client, args.events) for _ in range(args.repeat)]
        client.close()
    prices = pricing_ns()

    def median(name: str) -> float:
        return statistics.median(run[name] for run in runs)

    def ratio(a: str, b: str) -> float:
        return round(statistics.median(run[a] / run[b] for run in runs), 3)

    report = {
        "events": args.events,
        "plugin_events_per_s": round(median("plugin_events_per_s")),
        "unconfined_events_per_s": round(median("unconfined_events_per_s")),
        "raw_loop_events_per_s": round(median("raw_events_per_s")),
        "plugin_vs_unconfined_rate": ratio("plugin_events_per_s", "unconfined_events_per_s"),
        "plugin_vs_raw_rate": ratio("plugin_events_per_s", "raw_events_per_s"),
        "plugin_cpu_us_per_event": round(median("plugin_cpu_us_per_event"), 2),
        "plugin_vs_unconfined_cpu": ratio("plugin_cpu_us_per_event", "unconfined_cpu_us_per_event"),
        "cost_catalogue_ns": round(prices["catalogue"]),
        "cost_flat_model_ns": round(prices["flat_model"]),
        "cost_discount_model_ns": round(prices["discount_model"]),
        "discount_model_vs_catalogue": round(prices["discount_model"] / prices["catalogue"], 3),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
