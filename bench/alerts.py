"""Benchmark alert latency: from the XADD of a rule-breaking call event to the webhook receiver.

Starts its own embedded Valkey, an alerts worker (plain loop engine) and a notifier in this
process, and a signed-webhook receiver on loopback. Writes ``--alerts`` call events, one at a
time, each slow enough to break a per-call rule and each with its own fingerprint (a distinct
model), and waits for the receiver to hold each notification before writing the next. Prints
progress, then one JSON object on its last line with alert_latency_p50_ms / p99_ms.

    python bench/alerts.py [--alerts 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from typing import Any

import redis
import redis.asyncio as aredis

from llmtap import events, keys
from llmtap.analyzers.rules import Rule
from llmtap.consumers.alerts.processor import AlertsProcessor
from llmtap.consumers.notify.model import Receiver
from llmtap.consumers.notify.notifier import Notifier, NotifierOptions
from llmtap.consumers.notify.senders import build_senders
from llmtap.consumers.runtime import engine
from llmtap.consumers.runtime.config import RuntimeConfig
from llmtap.consumers.runtime.consumer import Consumer
from llmtap.embedded import EmbeddedValkey
from llmtap.testing import LocalReceiver, Received

RULE = Rule("slow-call", "latency_above", 2.0, group_by=("backend", "model"))
SECRET = "bench-secret"


def slow_call(i: int) -> events.CallEvent:
    """A call event that takes 5 s (breaking RULE), on a model of its own."""
    now = time.time()
    return events.CallEvent(
        v=1,
        call_id=f"bench-{i}",
        producer_id="bench",
        backend="openai",
        model_name=f"model-{i}",
        start_time=now - 5.0,
        end_time=now,
        latency=5.0,
        success=True,
        sample_rate=1.0,
        reason="slow",
    )


async def workers(url: str, receiver_url: str, stop: asyncio.Event) -> None:
    """Run the alerts worker and the notifier until ``stop``."""
    config = RuntimeConfig()  # the defaults: a caught-up worker commits at once
    alerts_client, notify_client = aredis.Redis.from_url(url), aredis.Redis.from_url(url)
    consumer = Consumer(alerts_client, lambda: AlertsProcessor([RULE]), config)
    receivers = [Receiver("bench", "webhook", url=receiver_url, secret=SECRET)]
    senders = build_senders(receivers)
    notifier = Notifier(notify_client, receivers, senders, options=NotifierOptions())
    try:
        await asyncio.gather(engine.run_loop(consumer, stop), notifier.run(stop))
    finally:
        for sender in senders.values():
            await sender.close()
        await alerts_client.aclose()
        await notify_client.aclose()


def measure(url: str, n: int) -> list[float]:
    """Return the latency (ms) of each of ``n`` alerts, XADD to receiver."""
    arrived: dict[str, float] = {}
    done = threading.Condition()

    def on_accept(got: Received) -> None:
        model = got.json()["alerts"][0]["labels"]["model"]
        with done:
            arrived[model] = time.perf_counter()
            done.notify_all()

    client = redis.Redis.from_url(url)
    latencies: list[float] = []
    with LocalReceiver(secret=SECRET, on_accept=on_accept) as rx:
        stop = asyncio.Event()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_until_complete, args=(workers(url, rx.url, stop),)
        )
        thread.start()
        try:
            for i in range(-20, n):  # the first 20 warm up connections and scripts
                latency = _one(client, i, arrived, done)
                if i >= 0:
                    latencies.append(latency)
                if i > 0 and i % 100 == 0:
                    p50 = statistics.median(latencies)
                    print(f"{i} alerts, p50 so far {p50:.1f} ms", file=sys.stderr)
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(30)
    client.close()
    return latencies


def _one(
    client: redis.Redis, i: int, arrived: dict[str, float], done: threading.Condition
) -> float:
    event = slow_call(i + 1000)
    started = time.perf_counter()
    client.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(event)})
    with done:
        if not done.wait_for(lambda: event.model_name in arrived, 30):
            raise RuntimeError(f"alert {i} did not arrive within 30 s")
        return (arrived[event.model_name] - started) * 1000


def percentile(values: list[float], q: float) -> float:
    """Return the q-quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main() -> int:
    """Run the benchmark; print progress, then the JSON result on the last line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=300)
    args = parser.parse_args()
    with EmbeddedValkey() as server:
        latencies = measure(server.url, args.alerts)
    result: dict[str, Any] = {
        "alerts": len(latencies),
        "alert_latency_p50_ms": round(percentile(latencies, 0.5), 2),
        "alert_latency_p99_ms": round(percentile(latencies, 0.99), 2),
        "alert_latency_max_ms": round(max(latencies), 2),
        "target_p99_ms": 100,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
