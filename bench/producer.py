"""What profiling costs the caller, next to an OpenTelemetry span, and how fast events move.

Prints one JSON object on its last line. Every number is measured in this run against a
baseline from the same run (the machine is shared and noisy):

- sampled_overhead_ns / unsampled_overhead_ns: median added cost of a wrapped call over the
  same bare function, at sampling 1.0 and 0.0, with the publisher thread running and keeping
  up (it drains between rounds, as it does behind calls that take milliseconds);
- background_sampled_ns / background_unsampled_ns: CPU the publisher thread then spends per
  call (usage, pricing, counters, sampling, event building), off the caller's path;
- floor_record_ns: the same measure for the least a recording wrapper can do in Python (two
  ``perf_counter()`` calls and a 9-tuple appended to a deque another thread drains), so
  sampled_over_floor says how much the wrapper adds to what any such wrapper costs here;
- otel_span_ns: an OpenTelemetry SDK span with 10 attributes and a BatchSpanProcessor to a
  no-op exporter;
- publish_events_per_s: events the publisher moves from its outbox into the stream;
  raw_xadd_events_per_s: a plain redis-py pipelined XADD loop of the same blobs;
- total_sampled_cpu_ns / total_unsampled_cpu_ns: process CPU (``time.process_time_ns``, every
  thread: the caller's and the publisher's) per call over N wrapped calls minus the same loop
  of bare calls, in chunks after each of which the publisher drains (so it keeps up);
  otel_total_cpu_ns is an OTel SDK span (10 attributes, BatchSpanProcessor) measured the same
  way, exporter flush included; total_over_otel = total_sampled_cpu_ns / otel_total_cpu_ns;
- capacity_calls_per_s: wrapped calls at sampling 1.0 in a tight loop, until every event is in
  the stream, with no drop (the run fails if one is dropped);
- stream_bytes_per_event: ``MEMORY USAGE`` of the stream after that run over its events;
- first_call_ms / warm_call_ms: the first profiled call of a fresh process (which starts the
  producer) and a later call in the same process, medians over a few processes;
  first_over_warm_ms is their difference (target: at most 1 ms).
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import redis

from llmtap import events, keys
from llmtap.embedded import EmbeddedValkey
from llmtap.producers.profiler import Profiler
from llmtap.producers.publisher import MAX_PIPELINE_EVENTS
from llmtap.settings import Settings

BATCH = 1000
ROUNDS = 150
RESPONSE = {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 812, "completion_tokens": 95}}


def bare() -> dict[str, Any]:
    """The 'LLM call': returns a response at once, so only the wrapper is measured."""
    return RESPONSE


def per_call_ns(fn: Callable[[], Any]) -> float:
    """Mean ns per call over one batch."""
    t0 = time.perf_counter_ns()
    for _ in range(BATCH):
        fn()
    return (time.perf_counter_ns() - t0) / BATCH


def median_overhead(
    candidate: Callable[[], Any],
    baseline: Callable[[], Any],
    settle: Callable[[], None] = lambda: None,
) -> float:
    """Median over interleaved rounds of (candidate - baseline) ns per call.

    ``settle`` runs between rounds, outside the timed part.
    """
    diffs = []
    for _ in range(ROUNDS):
        diffs.append(per_call_ns(candidate) - per_call_ns(baseline))
        settle()
    return statistics.median(diffs)


def floor_record_ns() -> float:
    """Return the added ns per call of the least a recording wrapper does (see the docstring)."""
    records: deque[tuple[Any, ...]] = deque()
    perf, ident = time.perf_counter, threading.get_ident

    def recorded() -> dict[str, Any]:
        t0 = perf()
        result = bare()
        records.append((None, {}, t0, perf(), result, None, None, None, ident()))
        return result

    return median_overhead(recorded, bare, records.clear)


def drained(profiler: Profiler) -> Callable[[], None]:
    """Return a callable that waits until the publisher has taken every queued record.

    Real LLM calls take milliseconds, so the publisher keeps up with any real application; a
    tight loop of instant 'calls' would instead pile records up faster than it drains them
    and measure the pile (GC over a growing queue), not the wrapper.
    """
    records = profiler.publisher.records

    def wait() -> None:
        while records:
            time.sleep(0.0005)

    return wait


def wrapper_overhead(url: str, rate: float) -> tuple[float, float]:
    """Return (caller ns, publisher-thread CPU ns) per call at sampling ``rate``."""
    settings = Settings(sampling_rate=rate, queue_size=10_000_000, rollup_interval_s=3600)
    profiler = Profiler(settings, redis_url=url).start()
    wrapped = profiler.wrap(bare, backend="openai", model="gpt-4o-mini", session="bench")
    for _ in range(20):
        per_call_ns(wrapped)  # warm the pricing cache and the connection
    profiler.flush(timeout=60)
    thread = profiler.publisher._thread
    assert thread is not None and thread.ident is not None
    clock = time.pthread_getcpuclockid(thread.ident)
    cpu0, calls0 = time.clock_gettime_ns(clock), profiler.stats()["total_calls"]
    caller = median_overhead(wrapped, bare, drained(profiler))
    profiler.flush(timeout=120)
    cpu = time.clock_gettime_ns(clock) - cpu0
    calls = profiler.stats()["total_calls"] - calls0
    profiler.close()
    return caller, cpu / calls


TOTAL_CALLS = 50_000
TOTAL_CHUNK = 500  # calls between two drains of the publisher (pacing)
TOTAL_ROUNDS = 5


def process_cpu_ns(fn: Callable[[], Any], settle: Callable[[], None], n: int) -> int:
    """Process CPU ns (all threads) over ``n`` calls of ``fn``, ``settle`` after each chunk."""
    cpu0 = time.process_time_ns()
    for _ in range(n // TOTAL_CHUNK):
        for _ in range(TOTAL_CHUNK):
            fn()
        settle()
    return time.process_time_ns() - cpu0


def total_cpu_per_call(
    candidate: Callable[[], Any], settle: Callable[[], None], n: int = TOTAL_CALLS
) -> float:
    """Median over rounds of (candidate - bare) process CPU ns per call, same pacing for both."""
    diffs = []
    for _ in range(TOTAL_ROUNDS):
        wrapped = process_cpu_ns(candidate, settle, n)
        baseline = process_cpu_ns(bare, settle, n)
        diffs.append((wrapped - baseline) / n)
    return statistics.median(diffs)


def idle(profiler: Profiler) -> Callable[[], None]:
    """Return a callable that waits until the publisher has processed and written everything."""
    publisher = profiler.publisher

    def wait() -> None:
        while not publisher.idle():
            time.sleep(0.0005)

    return wait


def total_overhead(url: str, rate: float) -> float:
    """Return the process CPU ns per wrapped call at sampling ``rate`` (publisher included)."""
    settings = Settings(sampling_rate=rate, queue_size=10_000_000, rollup_interval_s=3600)
    profiler = Profiler(settings, redis_url=url).start()
    wrapped = profiler.wrap(bare, backend="openai", model="gpt-4o-mini", session="bench")
    for _ in range(20):
        per_call_ns(wrapped)
    profiler.flush(timeout=60)
    total = total_cpu_per_call(wrapped, idle(profiler))
    assert profiler.stats()["dropped_events"] == 0
    profiler.close()
    return total


def capacity(url: str, n: int = 300_000) -> tuple[float, float]:
    """Return (calls/s at sampling 1.0 until all are in the stream, stream bytes per event)."""
    client = redis.Redis.from_url(url)
    client.delete(keys.EVENTS)
    settings = Settings(sampling_rate=1.0, queue_size=n + 1, rollup_interval_s=3600)
    profiler = Profiler(settings, redis_url=url).start(warm=True)
    wrapped = profiler.wrap(bare, backend="openai", model="gpt-4o-mini", session="bench")
    wrapped()
    profiler.flush(timeout=60)
    client.delete(keys.EVENTS)
    t0 = time.perf_counter()
    for _ in range(n):
        wrapped()
    wait = idle(profiler)
    wait()
    seconds = time.perf_counter() - t0
    stats = profiler.stats()
    profiler.close()
    if stats["dropped_events"]:
        raise SystemExit(f"capacity run dropped {stats['dropped_events']} events")
    size = int(client.memory_usage(keys.EVENTS, samples=0) or 0)
    client.close()
    return n / seconds, size / n


def otel_traced() -> tuple[Callable[[], Any], Any]:
    """Return the bare call inside an OTel SDK span (10 attributes, BatchSpanProcessor to a
    no-op exporter), and its tracer provider (to flush and shut down)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class NoOpExporter(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NoOpExporter()))
    tracer = provider.get_tracer("bench")
    attrs = {f"gen_ai.attr_{i}": i for i in range(10)}

    def traced() -> Any:
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes=attrs):
            return bare()

    return traced, provider


def otel_total_cpu_ns() -> float:
    """Process CPU ns per call of an OTel SDK span (10 attributes, BatchSpanProcessor)."""
    traced, provider = otel_traced()
    total = total_cpu_per_call(traced, lambda: provider.force_flush())
    provider.shutdown()
    return total


def otel_span_ns() -> float:
    """Median added ns of an OTel SDK span with 10 attributes around the bare call."""
    traced, provider = otel_traced()
    overhead = median_overhead(traced, bare)
    provider.shutdown()
    return overhead


def sample_events(n: int) -> list[events.CallEvent]:
    """``n`` realistic call events."""
    rng = random.Random(3)
    out = []
    for i in range(n):
        start = 1.7e9 + i * 0.01
        latency = rng.lognormvariate(-1, 0.6)
        out.append(events.CallEvent(
            v=1, call_id=f"{i:032x}", producer_id="bench", backend="openai",
            model_name="gpt-4o-mini", start_time=start, end_time=start + latency,
            latency=latency, success=True, sample_rate=1.0, reason="sampled",
            session_id=f"s-{i % 50}", thread_name="MainThread", input_tokens=812,
            output_tokens=95, estimated_cost_usd=0.0001788, pricing_version="genai-prices",
        ))  # fmt: skip
    return out


def publish_rates(url: str, n: int = 200_000, rounds: int = 6) -> tuple[float, float]:
    """Return median (publisher events/s, raw pipelined XADD events/s) over the same events.

    The two are measured in alternating rounds so that noise on a shared machine hits both.
    """
    client = redis.Redis.from_url(url)
    profiler = Profiler(Settings(queue_size=n + 1, batch_size=100), redis_url=url)
    publisher = profiler.publisher  # we feed its outbox and call send() ourselves
    profiler.close()
    evs = sample_events(n)
    encoded = [events.encode(e) for e in evs]  # the outbox holds encoded events
    blobs = [events.encode_batch(evs[i : i + 100]) for i in range(0, n, 100)]  # the same bytes

    def run_publisher() -> float:
        client.delete(keys.EVENTS)
        publisher.outbox.extend(encoded)
        t0 = time.perf_counter()
        while publisher.outbox:
            assert publisher.send()
        return n / (time.perf_counter() - t0)

    def run_raw() -> float:
        client.delete(keys.EVENTS)
        t0 = time.perf_counter()
        step = MAX_PIPELINE_EVENTS // 100  # entries per pipeline, as the publisher writes them
        for i in range(0, len(blobs), step):
            pipe = client.pipeline(transaction=False)
            for blob in blobs[i : i + step]:
                pipe.xadd(keys.EVENTS, {keys.FIELD_BATCH: blob}, maxlen=1_000_000, approximate=True)
            pipe.execute()
        return n / (time.perf_counter() - t0)

    run_raw()  # warm the server's allocator for this stream size
    publisher_rates: list[float] = []
    raw_rates: list[float] = []
    for i in range(rounds):  # ABBA order, so drift in machine load hits both alike
        order = (run_publisher, run_raw) if i % 2 == 0 else (run_raw, run_publisher)
        for run in order:
            (publisher_rates if run is run_publisher else raw_rates).append(run())
    client.close()
    return statistics.median(publisher_rates), statistics.median(raw_rates)


# Run in a fresh interpreter: times its first profiled call and a warm one, prints both (ms).
FIRST_CALL = """
import json, sys, time
from llmtap.producers.profiler import Profiler
from llmtap.settings import Settings
profiler = Profiler(Settings(sampling_rate=1.0), redis_url=sys.argv[1])
ask = profiler.wrap(lambda: {"model": "gpt-4o-mini"}, backend="openai", model="gpt-4o-mini")
t0 = time.perf_counter(); ask(); first = time.perf_counter() - t0
profiler.flush(timeout=60)  # start-up done: the catalogue is compiled, the connection open
t0 = time.perf_counter(); ask(); warm = time.perf_counter() - t0
print(json.dumps([first * 1e3, warm * 1e3]))
profiler.close()
"""


def first_call_ms(url: str, processes: int = 5) -> tuple[float, float]:
    """Return the medians over fresh processes of (first call ms, warm call ms)."""
    firsts, warms = [], []
    for _ in range(processes):
        done = subprocess.run(
            [sys.executable, "-c", FIRST_CALL, url], capture_output=True, text=True, check=True
        )
        first, warm = json.loads(done.stdout.strip().splitlines()[-1])
        firsts.append(first)
        warms.append(warm)
    return statistics.median(firsts), statistics.median(warms)


def main() -> None:
    if sys.argv[1:2] == ["--first-call"]:  # only the start-up measurement
        with EmbeddedValkey() as server:
            first, warm = first_call_ms(server.url)
        print(json.dumps({"first_call_ms": round(first, 3), "warm_call_ms": round(warm, 4),
                          "first_over_warm_ms": round(first - warm, 3)}))  # fmt: skip
        return
    if sys.argv[1:2] == ["--total"]:  # only the process-CPU, capacity and memory measures
        with EmbeddedValkey() as server:
            quick = {
                "total_sampled_cpu_ns": round(total_overhead(server.url, 1.0)),
                "total_unsampled_cpu_ns": round(total_overhead(server.url, 0.0)),
            }
            calls_per_s, bytes_per_event = capacity(server.url)
        quick.update(capacity_calls_per_s=round(calls_per_s),
                     stream_bytes_per_event=round(bytes_per_event, 1))  # fmt: skip
        print(json.dumps(quick))
        return
    with EmbeddedValkey() as server:
        sampled, bg_sampled = wrapper_overhead(server.url, 1.0)
        unsampled, bg_unsampled = wrapper_overhead(server.url, 0.0)
        floor = floor_record_ns()
        otel = otel_span_ns()
        total_sampled = total_overhead(server.url, 1.0)
        total_unsampled = total_overhead(server.url, 0.0)
        otel_total = otel_total_cpu_ns()
        calls_per_s, bytes_per_event = capacity(server.url)
        publish, raw = publish_rates(server.url)
        first, warm = first_call_ms(server.url)
    result = {
        "sampled_overhead_ns": round(sampled),
        "unsampled_overhead_ns": round(unsampled),
        "floor_record_ns": round(floor),
        "sampled_over_floor": round(sampled / max(floor, 1.0), 2),
        "background_sampled_ns": round(bg_sampled),
        "background_unsampled_ns": round(bg_unsampled),
        "otel_span_ns": round(otel),
        "otel_over_sampled": round(otel / max(sampled, 1.0), 1),
        "total_sampled_cpu_ns": round(total_sampled),
        "total_unsampled_cpu_ns": round(total_unsampled),
        "otel_total_cpu_ns": round(otel_total),
        "total_over_otel": round(total_sampled / otel_total, 3),
        "capacity_calls_per_s": round(calls_per_s),
        "stream_bytes_per_event": round(bytes_per_event, 1),
        "publish_events_per_s": round(publish),
        "raw_xadd_events_per_s": round(raw),
        "publish_over_raw": round(publish / raw, 3),
        "first_call_ms": round(first, 3),
        "warm_call_ms": round(warm, 4),
        "first_over_warm_ms": round(first - warm, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
