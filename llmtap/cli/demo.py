"""``llmtap demo``: realistic synthetic LLM traffic through the real wrapper into a real stream.

Several backends and models, lognormal latencies with a heavy tail, rate-limit errors with
retries, streaming calls, several sessions and threads, then prints what reached the stream.

It never touches data it did not create: by default it runs on its own embedded Valkey (even
when ``LLMTAP_REDIS_URL`` is set), and on a server given with ``--url`` it refuses a database
that already holds llmtap keys unless ``--db N`` names an empty one. Its timestamps are real.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import random
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis

from llmtap import connection, events, keys
from llmtap.cli import common
from llmtap.embedded import redis_url_or_embedded
from llmtap.events import CallEvent, RollupEvent
from llmtap.producers.profiler import Profiler
from llmtap.settings import Settings, redact_url


class RateLimitError(Exception):
    """The simulated provider's 429."""


class APITimeoutError(Exception):
    """The simulated provider timed out."""


@dataclass(frozen=True)
class Model:
    """A simulated model: where it runs, how fast it is and how often it fails."""

    backend: str
    name: str
    median_s: float
    error_rate: float
    weight: float


MODELS = (
    Model("openai", "gpt-4o", 0.060, 0.02, 3),
    Model("openai", "gpt-4o-mini", 0.030, 0.01, 6),
    Model("anthropic", "claude-3-5-sonnet-20241022", 0.080, 0.03, 3),
    Model("anthropic", "claude-3-5-haiku-20241022", 0.035, 0.01, 4),
    Model("bedrock", "anthropic.claude-3-haiku-20240307-v1:0", 0.050, 0.02, 2),
    Model("litellm", "mistral/mistral-large-latest", 0.070, 0.02, 1),
    Model("ollama", "llama3.1:8b", 0.045, 0.005, 2),
)
SESSIONS = tuple(f"session-{i}" for i in range(1, 9))
TENANTS = ("acme", "globex", "initech")


def _latency(rng: random.Random, model: Model) -> float:
    """Lognormal around the model's median, with a 1% heavy tail (x10 to x40)."""
    value = model.median_s * math.exp(rng.gauss(0.0, 0.5))
    if rng.random() < 0.01:
        value *= rng.uniform(10, 40)
    return value


def _response(model: Model, prompt: int, completion: int, elapsed: float) -> dict[str, Any]:
    """A response body shaped as the model's backend returns it."""
    if model.backend == "anthropic":
        return {"model": model.name, "usage": {"input_tokens": prompt, "output_tokens": completion,
                "cache_read_input_tokens": prompt // 4}}  # fmt: skip
    if model.backend == "bedrock":
        return {"usage": {"inputTokens": prompt, "outputTokens": completion},
                "metrics": {"latencyMs": int(elapsed * 800)}}  # fmt: skip
    if model.backend == "ollama":
        return {"model": model.name, "prompt_eval_count": prompt, "eval_count": completion,
                "total_duration": int(elapsed * 0.9e9)}  # fmt: skip
    return {"model": model.name, "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
            "prompt_tokens_details": {"cached_tokens": prompt // 5}}}  # fmt: skip


class Traffic:
    """Simulated application threads calling simulated models through the wrapper."""

    def __init__(self, profiler: Profiler, seed: int) -> None:
        self.profiler = profiler
        self.seed = seed
        self.calls = 0
        self._lock = threading.Lock()

    def _call(self, rng: random.Random, model: Model, session: str, tenant: str) -> None:
        prompt, completion = int(rng.lognormvariate(7, 0.8)), int(rng.lognormvariate(5, 0.7))
        for attempt in range(3):
            try:
                self._attempt(rng, model, session, tenant, attempt, (prompt, completion))
            except (RateLimitError, APITimeoutError):
                continue  # the application retries; the profiler saw the error
            finally:
                self._count()
            return

    def _attempt(
        self,
        rng: random.Random,
        model: Model,
        session: str,
        tenant: str,
        attempt: int,
        tokens: tuple[int, int],
    ) -> None:
        elapsed = _latency(rng, model)
        with self.profiler.profile(backend=model.backend, model=model.name, session=session,
                                   tenant=tenant, tags={"feature": "chat"}) as call:  # fmt: skip
            call.set_retry_count(attempt)
            time.sleep(elapsed)
            if rng.random() < model.error_rate * (3 if attempt == 0 else 1):
                error = RateLimitError if rng.random() < 0.7 else APITimeoutError
                raise error(f"{model.name} attempt {attempt}")
            call.record_response(_response(model, *tokens, elapsed))

    def _stream(self, rng: random.Random, model: Model, session: str) -> Iterator[dict[str, Any]]:
        time.sleep(_latency(rng, model) / 2)  # time to first token
        for _ in range(5):
            yield {"choices": [{"delta": {"content": "token"}}]}
            time.sleep(model.median_s / 10)
        yield {"choices": [], "usage": {"prompt_tokens": 800, "completion_tokens": 120}}

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def thread(self, index: int, stop: threading.Event) -> None:
        """One application thread: calls models until ``stop`` is set."""
        threading.current_thread().name = f"app-worker-{index}"
        rng = random.Random(self.seed * 1000 + index)
        weights = [m.weight for m in MODELS]
        stream = self.profiler.wrap(self._stream, backend="openai", model="gpt-4o-mini")
        while not stop.is_set():
            model = rng.choices(MODELS, weights)[0]
            session, tenant = rng.choice(SESSIONS), rng.choice(TENANTS)
            if rng.random() < 0.1:
                for _chunk in stream(rng, model, session):
                    pass
                self._count()
            else:
                self._call(rng, model, session, tenant)

    async def tasks(self, count: int, stop: threading.Event) -> None:
        """``count`` asyncio tasks calling an async model until ``stop`` is set."""
        model = MODELS[1]

        @self.profiler.profile(backend=model.backend, session="async-batch", tenant="acme")
        async def acall(rng: random.Random) -> dict[str, Any]:
            elapsed = _latency(rng, model)
            await asyncio.sleep(elapsed)
            return _response(model, 300, 40, elapsed)

        async def loop(i: int) -> None:
            rng = random.Random(self.seed * 7 + i)
            while not stop.is_set():
                await acall(rng)
                self._count()

        await asyncio.gather(*(loop(i) for i in range(count)))


class Workers:
    """The cost and latency workers, running on their own event loop in a thread."""

    NAMES = ("cost", "latency")

    def __init__(self, url: str) -> None:
        self.url = url
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="llmtap-demo-workers")

    def _run(self) -> None:
        from llmtap.consumers import service

        async def main() -> None:
            runs = [service.run_worker(self.url, name, self._stop) for name in self.NAMES]
            await asyncio.gather(*runs)

        self._loop.run_until_complete(main())

    def start(self) -> None:
        """Start consuming the stream in the background."""
        self._thread.start()

    def stop_and_drain(self) -> None:
        """Stop the workers, then let each drain what is left of the stream once."""
        from llmtap.consumers import service

        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._loop.close()
        asyncio.run(service.run_burst(self.url, self.NAMES))


class DemoRefusedError(RuntimeError):
    """The demo's server already holds llmtap data; the message says how to run it instead."""


def llmtap_keys(client: redis.Redis, limit: int = 3) -> list[str]:
    """Return up to ``limit`` llmtap key names in the client's database."""
    found = []
    for name in client.scan_iter(match=keys.ALL_KEYS_PATTERN, count=1000):
        found.append(name.decode() if isinstance(name, bytes) else str(name))
        if len(found) >= limit:
            break
    return found


def with_db(url: str, db: int) -> str:
    """Return ``url`` pointing at database ``db`` (the path of redis://, ``?db=`` of unix://)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "db"]
        return parts._replace(query=urllib.parse.urlencode([*query, ("db", str(db))])).geturl()
    return parts._replace(path=f"/{db}").geturl()


def check_free(url: str) -> None:
    """Raise DemoRefusedError when the database at ``url`` already holds llmtap keys."""
    client = common.connect(url)
    try:
        found = llmtap_keys(client)
    finally:
        client.close()
    if found:
        raise DemoRefusedError(
            f"{redact_url(url)} already holds llmtap data ({', '.join(found)}, ...) and the demo "
            "never writes into data it did not create: run `llmtap demo` without --url (its own "
            "embedded Valkey), or give it an empty database with --db N (e.g. --db 15)"
        )


def run(
    duration: float,
    threads: int,
    seed: int,
    settings: Settings,
    out: Any,
    url: str | None = None,
) -> dict[str, Any]:
    """Run the demo traffic for ``duration`` seconds on ``url`` (None: its own embedded Valkey;
    ``settings.redis_url`` is not used); return the summary it printed."""
    url, server = redis_url_or_embedded(url)
    print(f"llmtap demo: Redis at {redact_url(url)}"
          f"{' (embedded Valkey)' if server else ''}; {threads} threads + 4 asyncio tasks "
          f"for {duration:.0f}s, sampling {settings.sampling_rate}, "
          f"slow > {settings.slow_call_s}s, expensive > ${settings.expensive_call_usd}",
          file=out)  # fmt: skip
    client = connection.sync_client(url)
    workers = Workers(url)
    workers.start()
    started = time.time()
    profiler = Profiler(settings, redis_url=url).start()
    traffic = Traffic(profiler, seed)
    stop = threading.Event()
    apps = [threading.Thread(target=traffic.thread, args=(i, stop)) for i in range(threads)]
    apps.append(threading.Thread(target=lambda: asyncio.run(traffic.tasks(4, stop))))
    for app in apps:
        app.start()
    _progress(profiler, traffic, duration, out)
    stop.set()
    for app in apps:
        app.join()
    profiler.flush(timeout=10.0)
    profiler.close()
    workers.stop_and_drain()
    alert_lines = deliver_alerts(url, settings.slow_call_s)
    summary = summarize(client, traffic.calls, profiler.stats())
    summary["alerts"] = alert_lines
    summary["aggregates"] = read_aggregates(client, started - 60, time.time() + 60)
    summary["workers_exact"] = summary["aggregates"]["total"].get("calls") == traffic.calls
    client.close()
    print_summary(summary, out)
    print_aggregates(summary["aggregates"], out)
    print(f"  worker totals exact: {'yes' if summary['workers_exact'] else 'NO'}", file=out)
    print("\nAlerts (calls slower than the slow threshold), delivered to a local signed webhook",
          file=out)  # fmt: skip
    for line in alert_lines or ["  none: no call broke the rule"]:
        print(line, file=out)
    if server is not None:
        server.stop()
    return summary


def deliver_alerts(url: str, slow_call_s: float) -> list[str]:
    """Run the alerts worker and the notifier over the stream with a slow-call rule, into a
    local webhook receiver that checks signatures; return one line per alert it received.

    The demo waits (on the real clock, at most the rule's short quiet period) until the last
    slow call is quiet long enough, so alerts that fired during the run are also resolved.
    """
    from llmtap import testing

    with testing.demo_receiver() as (rx, receiver):
        rules = testing.demo_rules(slow_call_s)
        asyncio.run(testing.demo_cycle(url, rules, receiver))
        return testing.demo_lines(rx)


def read_aggregates(client: redis.Redis, since: float, until: float) -> dict[str, Any]:
    """Read back what the workers made of the stream, through the query functions."""
    from llmtap.read import query

    return {
        "cost_by_model": query.cost_by(client, "model", since, until),
        "total": query.cost_by(client, "total", since, until).get("total", {}),
        "latency": query.latency_percentiles(client, since, until),
        "error_rate": query.error_rate(client, since, until),
    }


def print_aggregates(aggregates: dict[str, Any], out: Any) -> None:
    """Print the workers' aggregates: cost per model and latency percentiles."""
    total = aggregates["total"]
    errors = aggregates["error_rate"].get("error_rate", 0.0)
    print("\nWhat the workers made of it (read back from the Redis hashes)", file=out)
    print(f"  total: {total.get('calls', 0)} calls, ${total.get('cost_usd', 0.0):.4f}, "
          f"error rate {errors:.2%}", file=out)  # fmt: skip
    print(f"  {'model':46s} {'calls':>7s} {'cost $':>9s} {'p50 ms':>8s} {'p95 ms':>8s} "
          f"{'p99 ms':>8s}", file=out)  # fmt: skip
    latency = {row["model"]: row for row in aggregates["latency"]}
    rows = sorted(aggregates["cost_by_model"].items(), key=lambda kv: -kv[1]["cost_usd"])
    for model, row in rows:
        lat = latency.get(model, {})
        cells = [_ms(lat.get(p)) for p in ("p50", "p95", "p99")]
        print(f"  {model:46s} {row.get('calls', 0):7d} {row['cost_usd']:9.4f} "
              f"{cells[0]:>8s} {cells[1]:>8s} {cells[2]:>8s}", file=out)  # fmt: skip


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def _progress(profiler: Profiler, traffic: Traffic, duration: float, out: Any) -> None:
    """Print a progress line every second (rewritten in place on a terminal)."""
    tty = getattr(out, "isatty", lambda: False)()
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < duration:
        time.sleep(min(1.0, duration - elapsed))
        stats = profiler.stats()
        line = (
            f"  {time.monotonic() - start:5.1f}s  calls {traffic.calls:7d}  "
            f"events kept {stats['profiled_calls']:6d}  published {stats['published_events']:6d}"
            f"  dropped {stats['dropped_events']}"
        )
        print(f"\r{line}" if tty else line, end="" if tty else "\n", file=out, flush=True)
    if tty:
        print(file=out)


def summarize(client: redis.Redis, calls_made: int, stats: dict[str, int]) -> dict[str, Any]:
    """Read the stream back and summarise what reached it."""
    by_reason: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    calls_by_model: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(keys.EVENTS))
    for _id, fields in entries:
        for event in events.decode_entry(fields):
            by_type[type(event).__name__] += 1
            if isinstance(event, CallEvent):
                by_reason[event.reason] += 1
            elif isinstance(event, RollupEvent):
                for row in event.rows:
                    calls_by_model[f"{row.backend}/{row.model}"] += row.calls
                    for name in ("calls", "errors", "input_tokens", "output_tokens",
                                 "cost_nanousd", "unpriced_calls"):  # fmt: skip
                        totals[name] += getattr(row, name)
    return {
        "calls_made": calls_made,
        "events_by_type": dict(by_type),
        "call_events_by_reason": dict(by_reason),
        "calls_by_model": dict(calls_by_model.most_common()),
        "rollup_totals": {**totals, "cost_usd": totals["cost_nanousd"] / 1e9},
        "producer": stats,
        "exact": totals["calls"] == calls_made,
    }


def print_summary(summary: dict[str, Any], out: Any) -> None:
    """Print the summary as a short human-readable report."""
    t = summary["rollup_totals"]
    print("\nWhat reached the stream", file=out)
    print(f"  events by type:    {summary['events_by_type']}", file=out)
    print(f"  call events kept:  {summary['call_events_by_reason']}", file=out)
    print("  calls by model (exact, from rollups):", file=out)
    for model, count in summary["calls_by_model"].items():
        print(f"    {model:48s} {count:7d}", file=out)
    print(f"  totals: {t.get('calls', 0)} calls ({summary['calls_made']} made), "
          f"{t.get('errors', 0)} errors, {t.get('input_tokens', 0)} input / "
          f"{t.get('output_tokens', 0)} output tokens, ${t['cost_usd']:.4f}, "
          f"{t.get('unpriced_calls', 0)} unpriced", file=out)  # fmt: skip
    print(f"  dropped events: {summary['producer']['dropped_events']}; rollups exact: "
          f"{'yes' if summary['exact'] else 'NO'}", file=out)  # fmt: skip


def demo_settings(environ: dict[str, str]) -> Settings:
    """Settings from the environment, with tail thresholds the simulated traffic can reach."""
    settings = Settings.from_env(environ)
    if "LLMTAP_SLOW_CALL_S" not in environ:
        settings = dataclasses.replace(settings, slow_call_s=1.0)
    if "LLMTAP_EXPENSIVE_CALL_USD" not in environ:
        settings = dataclasses.replace(settings, expensive_call_usd=0.02)
    return settings


def _command(args: argparse.Namespace) -> int:
    settings = demo_settings(dict(os.environ))
    url: str | None = args.url
    if url is not None:
        url = with_db(url, args.db) if args.db is not None else url
        common.use_url(args, url)
        try:
            check_free(url)
        except DemoRefusedError as exc:
            print(f"llmtap demo: {exc}", file=sys.stderr)
            return 2
    summary = run(args.duration, args.threads, args.seed, settings, sys.stdout, url=url)
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["exact"] and summary["workers_exact"] else 1


def add_parser(sub: Any) -> None:
    """Register ``llmtap demo``."""
    parser = sub.add_parser("demo", help="run synthetic LLM traffic through the wrapper")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of traffic (30)")
    parser.add_argument("--threads", type=int, default=16, help="application threads (16)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")
    parser.add_argument(
        "--url",
        help="run on this Redis instead of an embedded Valkey (refused if it holds llmtap data)",
    )
    parser.add_argument("--db", type=int, help="with --url: the (empty) database number to use")
    parser.set_defaults(func=_command)
