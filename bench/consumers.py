"""Benchmark the cost and latency workers against a raw XREADGROUP + XACK loop, same run.

Starts its own embedded Valkey, writes a synthetic stream (entries of ~100 events as the
publisher writes them, ~10% rollups), then drains it with: the raw loop (XREADGROUP COUNT 1000
+ XACK, no decoding), and each worker in burst mode with each engine (the plain redis-py loop
and FastStream), exactly once (Lua commit). Each measure is repeated; medians count, and a
ratio is taken within each run (worker and raw loop measured back to back) before its median.
The ``*_cpu_*`` keys compare process CPU per event (worker against loop) the same way.
Prints progress, then one JSON object on its last line.

    python bench/consumers.py [--events 200000] [--repeat 3] [--engines loop,faststream]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import time

import redis
import redis.asyncio as aredis

from llmtap import keys
from llmtap.consumers import registry, service
from llmtap.consumers.runtime.config import RuntimeConfig
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.embedded import EmbeddedValkey
from llmtap.testing import Workload

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


def server_cpu_ns(client: redis.Redis) -> int:
    """Return the Valkey server's CPU so far (user + system), in ns."""
    info = client.info("cpu")
    return round(1e9 * (float(info["used_cpu_user"]) + float(info["used_cpu_sys"])))


def measure_raw(url: str, client: redis.Redis, events: int, run: int) -> tuple[float, float, float]:
    """Return the raw loop's (events/s, process CPU ns per event, server CPU ns per event)
    over the whole stream."""
    group = f"bench-raw-{run}"
    started, cpu, server = time.perf_counter(), time.process_time_ns(), server_cpu_ns(client)
    asyncio.run(raw_loop(url, group))
    seconds, cpu = time.perf_counter() - started, time.process_time_ns() - cpu
    server = server_cpu_ns(client) - server
    client.xgroup_destroy(keys.EVENTS, group)
    return events / seconds, cpu / events, server / events


def measure_worker(
    ctx: WorkerContext, client: redis.Redis, name: str, events: int
) -> tuple[float, float, float]:
    """Return one worker's (events/s, process CPU ns per event, server CPU ns per event) over
    the whole stream, exactly once; check its count. The process CPU is the worker's (it runs
    in this process); the server's is what its reads and commit scripts cost Valkey."""
    cpu, server = time.process_time_ns(), server_cpu_ns(client)
    stats = asyncio.run(service.drain(ctx, [name]))[name]
    cpu = time.process_time_ns() - cpu
    server = server_cpu_ns(client) - server
    if stats.processed != events:
        raise SystemExit(f"{name} processed {stats.processed} of {events} events")
    reset_group(client, registry.spec(name).group)
    return events / stats.seconds, cpu / events, server / events


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
        runs: list[dict[str, float]] = []
        for run in range(args.repeat):
            rates: dict[str, float] = {}
            rates["raw"], rates["cpu:raw"], rates["server:raw"] = measure_raw(
                server.url, client, args.events, run
            )
            print(f"run {run}: raw loop {rates['raw']:,.0f} events/s", file=sys.stderr)
            for engine in engines:
                config = RuntimeConfig(engine=engine, read_count=args.read_count)
                ctx = service.context_from_env(server.url, config=config)
                for name in WORKERS:
                    label = f"{engine}:{name}"
                    (
                        rates[label],
                        rates[f"cpu:{label}"],
                        rates[f"server:{label}"],
                    ) = measure_worker(ctx, client, name, args.events)
                    print(f"run {run}: {label} {rates[label]:,.0f} events/s", file=sys.stderr)
            runs.append(rates)
        client.close()
    print(json.dumps(report(runs, engines, args, entries)))
    return 0


def report(
    runs: list[dict[str, float]], engines: list[str], args: argparse.Namespace, entries: int
) -> dict[str, object]:
    """Return the JSON report: medians over runs; ratios are per run (same run), then median.

    The default engine's numbers come first, then every engine's.
    """
    default = RuntimeConfig().engine if RuntimeConfig().engine in engines else engines[0]

    def rate(label: str) -> int:
        return round(statistics.median(run[label] for run in runs))

    def ratio(label: str) -> float:
        return round(statistics.median(run[label] / run["raw"] for run in runs), 3)

    out: dict[str, object] = {
        "cost_worker_events_per_s": rate(f"{default}:cost"),
        "latency_worker_events_per_s": rate(f"{default}:latency"),
        "raw_loop_events_per_s": rate("raw"),
        "cost_ratio": ratio(f"{default}:cost"),
        "latency_ratio": ratio(f"{default}:latency"),
        "engine": default,
    }
    for engine in engines:
        for name in WORKERS:
            out[f"{engine}_{name}_events_per_s"] = rate(f"{engine}:{name}")
            out[f"{engine}_{name}_ratio"] = ratio(f"{engine}:{name}")

    def per_event(kind: str, unit: str, ratio_key: str, over_raw: bool) -> None:
        """Add the raw loop's and every worker's ``kind`` per event, and each worker's median
        ratio to the raw loop's within a run (worker / raw with ``over_raw``, else raw /
        worker)."""
        out[f"raw_loop_{unit}"] = rate(f"{kind}:raw")
        for engine in engines:
            for name in WORKERS:
                label = f"{kind}:{engine}:{name}"
                out[f"{engine}_{name}_{unit}"] = rate(label)
                pairs = [(run[label], run[f"{kind}:raw"]) for run in runs]
                ratios = [w / r if over_raw else r / w for w, r in pairs]
                out[f"{engine}_{name}_{ratio_key}"] = round(statistics.median(ratios), 3)

    # The same comparison in process CPU per event (this process: the loop or the worker), which
    # a shared machine's load disturbs less than wall-clock rates: raw CPU / worker CPU.
    per_event("cpu", "cpu_ns_per_event", "cpu_ratio", over_raw=False)
    # Valkey's CPU per event (its share of a commit: the scripts' reads and writes), next to
    # the raw loop's XREADGROUP + XACK on the same server: worker / raw.
    per_event("server", "server_cpu_ns_per_event", "server_cpu_over_raw", over_raw=True)
    out.update(
        events=args.events,
        entries=entries,
        runs=args.repeat,
        statistic="median",
        config=dataclasses.asdict(RuntimeConfig(read_count=args.read_count)),
    )
    return out


if __name__ == "__main__":
    sys.exit(main())
