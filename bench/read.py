"""Benchmark the read side over a day of synthetic traffic: each tool function, uncached and with
a warm closed-bucket cache, next to a raw pipelined HGETALL of the same keys; and the HTTP
dashboard endpoint (``llmtap serve`` as a real process, its answer cache off) under concurrent
clients, next to ``/healthz`` on the same server.

Starts its own embedded Valkey and seeds it through the real workers, in a child process:
synthetic events at ``--events`` a day over the last 30 h are written to the stream and drained
by the cost, latency and sessions workers (burst mode), so the key layout is exactly what the
workers write. The 24 h views are timed at the current time and again at the worst-aligned
"now" of the last six hours (``*_worst_ms``: the window that takes the most buckets). Times are
medians of ``--repeat`` calls; CPU counts this process (every thread) and the Valkey server
(INFO cpu), per call. Prints progress, then one JSON object on its last line.

    python bench/read.py [--events 1000000] [--repeat 5] [--clients 20] [--requests 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from llmtap import aggregates, keys
from llmtap.consumers import service
from llmtap.embedded import EmbeddedValkey
from llmtap.read import cost, dashboard, insights, performance, report, status
from llmtap.read.bucketcache import BucketCache
from llmtap.read.snapshot import bucket_names, cover
from llmtap.read.window import HOUR
from llmtap.testing import Workload

WORKERS = ("cost", "latency", "sessions")
DAY = 86_400
SIX_HOURS = 6 * 3600


def seed(url: str, events: int) -> dict[str, float]:
    """Seed in a child process (:func:`seed_here`) and return its timings: the reads are then
    measured in a process that holds what a serving process holds, not the millions of objects
    that generating the traffic left behind (in this process they slowed the report by 15 ms,
    49 → 62 ms with 3M live tuples: memory the reads walk through, not the reads)."""
    child = subprocess.run(
        [sys.executable, __file__, "--seed-into", url, "--events", str(events)],
        check=True,
        stdout=subprocess.PIPE,
    )
    timings: dict[str, float] = json.loads(child.stdout)
    return timings


def seed_here(url: str, events: int) -> dict[str, float]:
    """Write ``events`` over the last 24 h, drain them with the workers; return the timings."""
    client = redis.Redis.from_url(url)
    now = time.time()
    started = time.perf_counter()
    # 30 hours at the rate of ``events`` a day: every 24 h window ending in the last 6 hours
    # (where the worst-aligned one lies, see worst_now) holds a full day of traffic.
    span = DAY + SIX_HOURS
    events = round(events * span / DAY)
    Workload(7, start=now - span, span_s=span).write(client, events)
    written = time.perf_counter()
    stats = asyncio.run(service.run_burst(url, WORKERS))
    drained = time.perf_counter()
    for name, got in stats.items():
        if got.processed != events:
            raise SystemExit(f"{name} processed {got.processed} of {events} events")
    client.xtrim(keys.EVENTS, maxlen=0)  # the stream's bytes are not what is measured
    client.close()
    return {"seed_write_s": written - started, "seed_drain_s": drained - written}


def server_cpu(client: redis.Redis) -> float:
    """Return the Valkey server's CPU seconds so far."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(client: redis.Redis, call: Callable[[], Any], repeat: int) -> dict[str, float]:
    """Return the median wall time, and the mean CPU of this process and of the server, in ms."""
    call()  # warm imports and the field-name memo
    walls = []
    cpu0, server0 = time.process_time(), server_cpu(client)
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        walls.append(time.perf_counter() - started)
    return {
        "ms": 1000 * statistics.median(walls),
        "cpu_ms": 1000 * (time.process_time() - cpu0) / repeat,
        "server_cpu_ms": 1000 * (server_cpu(client) - server0) / repeat,
    }


def raw_keys(client: redis.Redis, since: float, until: float) -> list[str]:
    """Return the cost, usage and latency hashes a read of the range fetches."""
    names = bucket_names(cover(since, until))
    out = [k for g, n in names for k in (keys.cost(g, n), keys.usage(g, n))]
    for g, n in names:
        for member in sorted(client.smembers(keys.latency_index(g, n))):  # type: ignore[arg-type]
            out.append(keys.latency(g, n, *aggregates.decode_latency_member(member)))
    return out


def raw_read(client: redis.Redis, names: list[str]) -> Callable[[], Any]:
    """Return the baseline: one pipelined HGETALL of every key, nothing decoded or merged."""

    def run() -> Any:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(name)
        return pipe.execute()

    return run


def worst_now(now: float) -> float:
    """Return the "now" of the last six hours whose 24 h window takes the most buckets (its
    edges far from hour, ten-minute and quarter-day boundaries), half a minute past a minute."""
    minutes = [math.floor(now / 60) * 60 - 60 * i - 30 for i in range(1, SIX_HOURS // 60)]
    return max(minutes, key=lambda t: (len(cover(t - DAY, t)), t))


def tools(
    client: redis.Redis, cache: BucketCache | None, clock: Callable[[], float] = time.time
) -> dict[str, Callable[[], Any]]:
    """Return the measured calls; "now" is ``clock()`` at each call (the tools default to the
    wall clock)."""

    def window(hours: float) -> tuple[float, float]:
        now = clock()
        return now - hours * HOUR, now

    return {
        "status": lambda: status.profiling_status(client),
        "cost_24h": lambda: cost.cost_analysis(client, *window(24), cache=cache),
        "dashboard_24h": lambda: dashboard.dashboard(client, 24, clock(), cache=cache),
        "performance_24h": lambda: performance.performance_analysis(
            client, *window(24), cache=cache
        ),
        "performance_7d": lambda: performance.performance_analysis(
            client, *window(168), cache=cache
        ),
        "insights_168h": lambda: insights.optimization_insights(client, *window(168), cache=cache),
        "report_24h": lambda: report.export_report(client, *window(24), "json", cache=cache),
    }


def free_port() -> int:
    """Return a port the kernel just handed out."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(url: str, bucket_cache: bool) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``llmtap serve`` (answer cache off; its closed-bucket cache as asked) and wait
    until /healthz answers."""
    port = free_port()
    command = [sys.executable, "-m", "llmtap.cli.main", "serve", "--url", url]
    command += ["--port", str(port), "--cache-ttl", "0"]
    command += ["--bucket-cache" if bucket_cache else "--no-bucket-cache"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"llmtap serve did not start: {proc.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]


def process_cpu(pid: int) -> float:
    """Return a process's CPU seconds (user + system) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(base: str, path: str, clients: int, requests: int) -> list[float]:
    """Return the latency (s) of every request of ``clients`` threads doing ``requests`` each."""
    times: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            for _ in range(requests):
                started = time.perf_counter()
                reply = http.get(path)
                took = time.perf_counter() - started
                if reply.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {reply.status_code}")
                with lock:
                    times.append(took)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def percentile(times: list[float], q: float) -> float:
    """Return the ``q`` quantile of ``times`` in ms (nearest rank)."""
    ordered = sorted(times)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def http_figures(
    url: str, clients: int, requests: int, bucket_cache: bool = False
) -> dict[str, float]:
    """Return p50/p99 of the dashboard endpoint and of /healthz, and serve's CPU per request."""
    proc, base = serve(url, bucket_cache)
    try:
        load(base, "/api/v1/dashboard?hours_back=24", 2, 1)  # warm
        cpu0 = process_cpu(proc.pid)
        dash = load(base, "/api/v1/dashboard?hours_back=24", clients, requests)
        cpu = process_cpu(proc.pid) - cpu0
        health = load(base, "/healthz", clients, requests)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {
        "api_dashboard_p50_ms": percentile(dash, 0.5),
        "api_dashboard_p99_ms": percentile(dash, 0.99),
        "api_dashboard_serve_cpu_ms_per_request": 1000 * cpu / len(dash),
        "api_healthz_p50_ms": percentile(health, 0.5),
        "api_healthz_p99_ms": percentile(health, 0.99),
    }


def main() -> int:
    """Run the benchmark; print one JSON object on the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10, help="per client")
    parser.add_argument("--seed-into", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_into:  # the child process of seed()
        print(json.dumps(seed_here(args.seed_into, args.events)))
        return 0
    out: dict[str, Any] = {"events": args.events}
    with EmbeddedValkey() as server:
        client = redis.Redis.from_url(server.url)
        out.update(seed(server.url, args.events))
        print(f"seeded {args.events} events: {out}", file=sys.stderr)
        now = time.time()
        for label, hours in (("24h", 24), ("7d", 168)):
            names = raw_keys(client, now - hours * HOUR, now)
            got = measure(client, raw_read(client, names), args.repeat)
            out[f"raw_{label}_keys"] = len(names)
            replies = raw_read(client, names)()
            out[f"raw_{label}_fields"] = sum(len(reply) for reply in replies)
            out[f"raw_{label}_bytes"] = sum(len(k) + len(v) for h in replies for k, v in h.items())
            out.update({f"raw_{label}_{k}": v for k, v in got.items()})
        for name, call in tools(client, None).items():
            got = measure(client, call, args.repeat)
            out.update({f"{name}_{k}": v for k, v in got.items()})
            print(f"{name}: {got}", file=sys.stderr)
        # The same 24 h views at the worst-aligned "now" of the last six hours.
        worst = worst_now(time.time())
        out["buckets_24h"] = len(cover(time.time() - DAY, time.time()))
        out["buckets_24h_worst"] = len(cover(worst - DAY, worst))
        for name, call in tools(client, None, lambda: worst).items():
            if name.endswith("_24h"):
                out[f"{name}_worst_ms"] = measure(client, call, args.repeat)["ms"]
                print(f"{name} worst: {out[f'{name}_worst_ms']:.1f} ms", file=sys.stderr)
        cache = BucketCache()
        for name, call in tools(client, cache).items():
            if name != "status":
                out[f"{name}_cached_ms"] = measure(client, call, args.repeat)["ms"]
        out["cache_entries"] = len(cache)
        out.update(http_figures(server.url, args.clients, args.requests))
        # What ``llmtap serve`` runs by default: closed buckets shared by every request.
        cached = http_figures(server.url, args.clients, args.requests, bucket_cache=True)
        out.update({k.replace("api_", "api_bucket_cache_", 1): v for k, v in cached.items()})
        client.close()
    for name, raw in (("dashboard_24h", "24h"), ("performance_24h", "24h"),
                      ("report_24h", "24h"), ("performance_7d", "7d"),
                      ("insights_168h", "7d")):  # fmt: skip
        out[f"{name}_over_raw"] = out[f"{name}_ms"] / out[f"raw_{raw}_ms"]
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
