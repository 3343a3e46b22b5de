"""Benchmark the cost and latency workers against a raw XREADGROUP + XACK loop, same run.

Starts its own embedded Valkey, writes a synthetic stream (entries of ~100 events as the
publisher writes them, ~10% rollups), then drains it with: the raw loop (XREADGROUP COUNT 1000
+ XACK, no decoding), and each worker in burst mode with each engine (the plain redis-py loop
and FastStream), exactly once (Lua commit). Each measure is repeated; the best run counts.
Prints progress, then one JSON object on its last line.

    python bench/consumers.py [--events 200000] [--repeat 3] [--engines loop,faststream]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time

import redis
import redis.asyncio as aredis

from llmtap import keys
from llmtap.consumers import registry, service
from llmtap.consumers.config import RuntimeConfig
from llmtap.consumers.synthetic import Workload
from llmtap.embedded import EmbeddedValkey

WORKERS = ("cost", "latency")
# Events the synthetic producers emit per second of event time (sets how many minute
# buckets a flush touches).
EVENT_RATE = 20_000


async def raw_loop(url: str, group: str) -> int:
    """Drain the stream with XREADGROUP COUNT 1000 + XACK; return the entries read."""
    client = aredis.Redis.from_url(url)
    await client.xgroup_create(keys.EVENTS, group, id="0")
    entries = 0
    while True:
        reply = await client.xreadgroup(group, "raw", {keys.EVENTS: ">"}, count=1000)
        if not reply:
            break
        ids = [entry_id for entry_id, _ in reply[0][1]]
        await client.xack(keys.EVENTS, group, *ids)
        entries += len(ids)
    await client.aclose()
    return entries


def reset_group(client: redis.Redis, group: str) -> None:
    """Forget a group and its counters so the next run reads the whole stream again."""
    client.xgroup_destroy(keys.EVENTS, group)
    client.delete(keys.stats(group))
    for key in client.scan_iter(f"{keys.DEDUP_PREFIX}:{group}:*"):
        client.delete(key)


def measure_raw(url: str, client: redis.Redis, events: int, run: int) -> float:
    """Return the raw loop's events/s over the whole stream."""
    group = f"bench-raw-{run}"
    started = time.perf_counter()
    asyncio.run(raw_loop(url, group))
    seconds = time.perf_counter() - started
    client.xgroup_destroy(keys.EVENTS, group)
    return events / seconds


def measure_worker(
    url: str, client: redis.Redis, name: str, config: RuntimeConfig, events: int
) -> float:
    """Return one worker's events/s over the whole stream, exactly once; check its count."""
    stats = asyncio.run(service.run_burst(url, [name], config=config))[name]
    if stats.processed != events:
        raise SystemExit(f"{name} processed {stats.processed} of {events} events")
    reset_group(client, registry.spec(name).group)
    return events / stats.seconds


def main() -> int:
    """Run the benchmark; print one JSON object on the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default="loop,faststream")
    parser.add_argument("--read-count", type=int, default=RuntimeConfig.read_count)
    args = parser.parse_args()
    engines = args.engines.split(",")
    with EmbeddedValkey() as server:
        client = redis.Redis.from_url(server.url)
        workload = Workload(7, span_s=args.events / EVENT_RATE)
        entries = workload.write(client, args.events)
        print(f"wrote {args.events} events in {entries} entries", file=sys.stderr)
        best: dict[str, float] = {}
        for run in range(args.repeat):
            rate = measure_raw(server.url, client, args.events, run)
            best["raw"] = max(best.get("raw", 0.0), rate)
            print(f"run {run}: raw loop {rate:,.0f} events/s", file=sys.stderr)
            for engine in engines:
                config = RuntimeConfig(engine=engine, read_count=args.read_count)
                for name in WORKERS:
                    rate = measure_worker(server.url, client, name, config, args.events)
                    label = f"{engine}:{name}"
                    best[label] = max(best.get(label, 0.0), rate)
                    print(f"run {run}: {label} {rate:,.0f} events/s", file=sys.stderr)
        client.close()
    print(json.dumps(report(best, engines, args, entries)))
    return 0


def report(
    best: dict[str, float], engines: list[str], args: argparse.Namespace, entries: int
) -> dict[str, object]:
    """Return the JSON report: the default engine's numbers first, then every engine's."""
    default = RuntimeConfig().engine if RuntimeConfig().engine in engines else engines[0]
    raw = best["raw"]
    out: dict[str, object] = {
        "cost_worker_events_per_s": round(best[f"{default}:cost"]),
        "latency_worker_events_per_s": round(best[f"{default}:latency"]),
        "raw_loop_events_per_s": round(raw),
        "cost_ratio": round(best[f"{default}:cost"] / raw, 3),
        "latency_ratio": round(best[f"{default}:latency"] / raw, 3),
        "engine": default,
    }
    for engine in engines:
        for name in WORKERS:
            rate = best[f"{engine}:{name}"]
            out[f"{engine}_{name}_events_per_s"] = round(rate)
            out[f"{engine}_{name}_ratio"] = round(rate / raw, 3)
    out.update(
        events=args.events,
        entries=entries,
        repeat=args.repeat,
        read_count=args.read_count,
        config=dataclasses.asdict(RuntimeConfig(read_count=args.read_count)),
    )
    return out


if __name__ == "__main__":
    sys.exit(main())
