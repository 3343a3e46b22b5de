"""Aids for tests, benchmarks and the demo: synthetic streams with ground truth, a local receiver.

:class:`Workload` writes seeded synthetic event streams with their exact :class:`GroundTruth`.
Entries are shaped as the publisher writes them: mostly ``b`` arrays of about ``batch_size``
events, some single ``e`` events, about ``rollup_share`` of the events rollups. Timestamps grow
along the stream, as they do in a live stream. :class:`LocalReceiver` is a real HTTP receiver
on loopback that verifies signatures; the ``demo_*`` functions drive ``llmtap demo``'s alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final

import redis

from llmtap import connection, events, keys
from llmtap.analyzers.rules import Rule
from llmtap.webhooks import VerificationError, verify

if TYPE_CHECKING:
    from llmtap.consumers.alerts.state import AlertStore
    from llmtap.consumers.notify.model import Receiver

MODELS: Final = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4"),
    ("bedrock", "anthropic.claude-3-haiku"),
    ("ollama", "llama3:8b"),
    ("litellm", "mistral/mistral-large"),
)
TENANTS: Final = ("acme", "globex", None)
SESSIONS: Final = ("s-1", "s-2", "s-3", None)
SAMPLE_RATES: Final = (1.0, 0.5, 0.25, 0.1)
TOKEN_KINDS: Final = ("input", "output", "cache_read", "cache_write", "reasoning")


@dataclass
class GroundTruth:
    """What a correct consumer must count from a synthetic stream."""

    call_events: int = 0
    rollup_events: int = 0
    calls: int = 0
    errors: int = 0
    cost_nanousd: int = 0
    unpriced_calls: int = 0
    tokens: Counter[str] = field(default_factory=Counter)
    cost_by_backend: Counter[str] = field(default_factory=Counter)
    calls_by_model: Counter[str] = field(default_factory=Counter)
    call_events_by_model: Counter[tuple[str, str]] = field(default_factory=Counter)
    unpriced_call_events: int = 0
    costs_of_calls: list[tuple[float, str]] = field(default_factory=list)

    @property
    def total_events(self) -> int:
        """Every valid event (call and rollup) in the stream."""
        return self.call_events + self.rollup_events

    def add_rollup(self, rollup: events.RollupEvent) -> None:
        """Count one rollup (call it once per distinct producer and seq)."""
        self.rollup_events += 1
        for row in rollup.rows:
            self.calls += row.calls
            self.errors += row.errors
            self.cost_nanousd += row.cost_nanousd
            self.unpriced_calls += row.unpriced_calls
            self.cost_by_backend[row.backend] += row.cost_nanousd
            self.calls_by_model[row.model] += row.calls
            for kind in TOKEN_KINDS:
                self.tokens[kind] += getattr(row, f"{kind}_tokens")

    def add_call(self, call: events.CallEvent) -> None:
        """Count one call event."""
        self.call_events += 1
        self.call_events_by_model[call.backend, call.model_name] += 1
        if call.estimated_cost_usd is None:
            self.unpriced_call_events += 1
        else:
            self.costs_of_calls.append((call.estimated_cost_usd, call.call_id))


class Workload:
    """A seeded generator of stream entries; ``truth`` fills in as entries are generated."""

    def __init__(
        self,
        seed: int,
        *,
        start: float = 1_767_225_600.0,
        span_s: float = 600.0,
        rollup_share: float = 0.1,
        batch_size: int = 100,
        producer_id: str | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.span_s = span_s
        self.rollup_share = rollup_share
        self.batch_size = batch_size
        self.producer_id = producer_id or f"synthetic-{seed}"
        self.truth = GroundTruth()
        self._seq = 0
        self._calls = 0

    def entries(self, n_events: int) -> Iterator[dict[bytes, bytes]]:
        """Yield stream entries holding ``n_events`` events in all."""
        made = 0
        while made < n_events:
            size = min(n_events - made, self._entry_size())
            batch = [self._event(made + i, n_events) for i in range(size)]
            made += size
            if size == 1 and self.rng.random() < 0.5:
                yield {keys.FIELD_EVENT: events.encode(batch[0])}
            else:
                yield {keys.FIELD_BATCH: events.encode_batch(batch)}

    def write(self, client: redis.Redis, n_events: int, chunk: int = 500) -> int:
        """XADD entries holding ``n_events`` events with a pipeline; return the entry count."""
        written = 0
        pipe = client.pipeline(transaction=False)
        for fields in self.entries(n_events):
            pipe.xadd(keys.EVENTS, fields)  # type: ignore[arg-type]
            written += 1
            if written % chunk == 0:
                pipe.execute()
        pipe.execute()
        return written

    def rollup(self, ts: float) -> events.RollupEvent:
        """Return the next rollup of this producer (and count it in the truth)."""
        self._seq += 1
        rows = [self._row() for _ in range(self.rng.randint(1, 4))]
        stats = events.ProducerStats(total_calls=self._seq * 10, profiled_calls=self._seq)
        rollup = events.RollupEvent(
            v=1,
            producer_id=self.producer_id,
            seq=self._seq,
            window_start=ts,
            window_end=ts + 5.0,
            rows=rows,
            stats=stats,
        )
        self.truth.add_rollup(rollup)
        return rollup

    def call(self, ts: float) -> events.CallEvent:
        """Return one call event at ``ts`` (and count it in the truth)."""
        rng = self.rng
        self._calls += 1
        backend, model = rng.choice(MODELS)
        latency = rng.lognormvariate(0.0, 1.0)
        network = latency * rng.random() if rng.random() < 0.8 else None
        call = events.CallEvent(
            v=1,
            call_id=f"{self.producer_id}-c{self._calls}",
            producer_id=self.producer_id,
            backend=backend,
            model_name=model,
            start_time=ts,
            end_time=ts + latency,
            latency=latency,
            success=rng.random() > 0.05,
            sample_rate=rng.choice(SAMPLE_RATES),
            reason="sampled",
            session_id=rng.choice(SESSIONS),
            tenant=rng.choice(TENANTS),
            network_latency=network,
            processing_time=None if network is None else latency - network,
            ttft=latency * 0.2 if rng.random() < 0.7 else None,
            input_tokens=rng.randint(10, 4000),
            output_tokens=rng.randint(0, 1000),
            estimated_cost_usd=None if rng.random() < 0.1 else round(rng.random() * 0.05, 9),
        )
        self.truth.add_call(call)
        return call

    def _entry_size(self) -> int:
        if self.rng.random() < 0.05:
            return 1
        return max(1, int(self.rng.gauss(self.batch_size, self.batch_size / 10)))

    def _event(self, i: int, n: int) -> events.Event:
        ts = self.start + self.span_s * i / max(n, 1)
        if self.rng.random() < self.rollup_share:
            return self.rollup(ts)
        return self.call(ts)

    def _row(self) -> events.RollupRow:
        rng = self.rng
        backend, model = rng.choice(MODELS)
        calls = rng.randint(1, 50)
        return events.RollupRow(
            backend=backend,
            model=model,
            session=rng.choice(SESSIONS),
            tenant=rng.choice(TENANTS),
            calls=calls,
            errors=rng.randint(0, calls // 10),
            input_tokens=rng.randint(0, 100_000),
            output_tokens=rng.randint(0, 20_000),
            cache_read_tokens=rng.randint(0, 5_000),
            cache_write_tokens=rng.randint(0, 2_000),
            reasoning_tokens=rng.randint(0, 3_000),
            cost_nanousd=rng.randint(0, 10**9),
            unpriced_calls=rng.randint(0, 2),
        )


# --- a real receiver on loopback -------------------------------------------------------

# A responder returns (status, headers) or (status, headers, body); the default body is "ok".
Responder = Callable[["Received"], tuple[Any, ...]]


@dataclass(frozen=True)
class Received:
    """One request a :class:`LocalReceiver` got: when (its clock), path, headers, body."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the decoded JSON body."""
        return json.loads(self.body)


@dataclass
class LocalReceiver:
    """An HTTP server on 127.0.0.1 that records every POST (``with LocalReceiver() as rx:``).

    ``respond`` decides each answer (default 200); ``secret`` makes it verify signatures
    and answer 401 to a bad one. ``accepted`` holds the requests answered 2xx; ``requests``
    every request. ``on_accept`` is called (in the server thread) for each accepted one.
    """

    secret: str | None = None
    respond: Responder | None = None
    on_accept: Callable[[Received], None] | None = None
    requests: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def __enter__(self) -> LocalReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving in a daemon thread; ``url`` is set."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                got = Received(time.time(), self.path, dict(self.headers), self.rfile.read(length))
                status, headers, payload = receiver.handle(got)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(self, got: Received) -> tuple[int, dict[str, str], bytes]:
        """Record a request and return (status, headers, body) for it."""
        answer = self.respond(got) if self.respond else (200, {})
        status, headers = int(answer[0]), dict(answer[1])
        payload = bytes(answer[2]) if len(answer) > 2 else b"ok"
        if status < 300 and self.secret and not self._authentic(got):
            status, headers, payload = 401, {}, b"bad signature"
        with self._lock:
            self.requests.append(got)
            if status < 300:
                self.accepted.append(got)
            self._lock.notify_all()
        if status < 300 and self.on_accept is not None:
            self.on_accept(got)
        return status, headers, payload

    def _authentic(self, got: Received) -> bool:
        try:
            verify(self.secret or "", got.headers, got.body)
        except VerificationError:
            return False
        return True

    def wait(self, count: int, timeout_s: float = 30.0) -> list[Received]:
        """Wait until ``count`` requests were accepted; return them (AssertionError on timeout)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.accepted) >= count, timeout_s):
                raise AssertionError(f"{len(self.accepted)} of {count} notifications arrived")
            return list(self.accepted)

    def alerts(self) -> Iterator[dict[str, Any]]:
        """Yield the decoded bodies of the accepted requests."""
        for got in list(self.accepted):
            yield got.json()


# --- for `llmtap demo` -------------------------------------------------------------------

DEMO_SECRET: Final = "llmtap-demo-secret"
#: The demo rule's quiet period: how long after its last slow call an alert resolves (short,
#: because the demo waits for it on the real clock).
DEMO_QUIET_S: Final = 1.0


def demo_rules(slow_call_s: float) -> list[Rule]:
    """Return the demo's rule: a call slower than ``slow_call_s``, per backend and model."""
    return [
        Rule(
            "demo-slow-call",
            "latency_above",
            slow_call_s,
            group_by=("backend", "model"),
            resolve_after_s=DEMO_QUIET_S,
        )
    ]


@contextlib.contextmanager
def demo_receiver() -> Iterator[tuple[LocalReceiver, Receiver]]:
    """Yield a signature-checking webhook receiver on loopback and its Receiver config."""
    from llmtap.consumers.notify.model import Receiver

    with LocalReceiver(secret=DEMO_SECRET) as rx:
        yield rx, Receiver("demo-webhook", "webhook", url=rx.url, secret=DEMO_SECRET)


async def demo_cycle(
    url: str,
    rules: Sequence[Rule],
    receiver: Receiver,
    clock: Callable[[], float] = time.time,
) -> int:
    """Fire, resolve and deliver once: drain the stream with the alerts worker, wait on the
    real ``clock`` until every active alert has been quiet for its rule's resolve_after, tick
    at that (real) time so they resolve, then drain the outbox to ``receiver``. Returns the
    alerts delivered. No timestamp it writes is later than ``clock()``."""
    from llmtap.consumers.alerts.evaluator import Evaluator
    from llmtap.consumers.alerts.processor import AlertsProcessor
    from llmtap.consumers.notify.notifier import run_notifier
    from llmtap.consumers.runtime import engine
    from llmtap.consumers.runtime.config import RuntimeConfig
    from llmtap.consumers.runtime.consumer import Consumer

    client = connection.async_client(url)
    reader = connection.sync_client(url)
    try:
        consumer = Consumer(client, lambda: AlertsProcessor(rules), RuntimeConfig(block_ms=100))
        await engine.run_loop(consumer, asyncio.Event(), burst=True)
        evaluator = Evaluator(client, reader, rules)
        await _until(clock, await _quiet_at(evaluator.store, rules))
        await evaluator.tick(clock())
        counters = await run_notifier(url, asyncio.Event(), burst=True, receivers=[receiver])
    finally:
        await client.aclose()
        reader.close()
    return sum(c.get("delivered", 0) for c in counters.values())


async def _quiet_at(store: AlertStore, rules: Sequence[Rule]) -> float:
    """Return when the last active per-call alert will have been quiet for its rule's
    resolve_after (a little after, since resolution wants "seen before"); 0 when none."""
    due = 0.0
    for rule in rules:
        if rule.per_call:
            seen = (await store.active(rule.name)).values()
            due = max([due, *(last + rule.resolve_after_s + 0.01 for last in seen)])
    return due


async def _until(clock: Callable[[], float], moment: float) -> None:
    """Wait until ``clock()`` reaches ``moment`` (real waiting: the demo's time is real)."""
    while (left := moment - clock()) > 0:
        await asyncio.sleep(min(left, 0.5))


def demo_lines(rx: LocalReceiver) -> list[str]:
    """Return one line per alert the demo receiver got (verified): status, rule, labels."""
    lines = []
    for message in rx.alerts():
        for alert in message["alerts"]:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
            when = alert["endsAt"] or alert["startsAt"]
            lines.append(f"  {alert['status']:9s} {alert['rule']} [{labels}] at {when}")
    return lines
