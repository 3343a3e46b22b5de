"""The notifier: delivers ``llmtap:notify`` to Slack and signed webhooks, losing nothing.

A consumer group reads the outbox; each entry is routed to the receivers whose routes match
(severity, labels) and put on each receiver's own queue, served by its own task, so a slow or
dead receiver holds up nobody else and each receiver gets notifications in stream order (so in
order per fingerprint). A delivery is retried with exponential backoff and jitter (or after the
receiver's Retry-After) up to the policy's attempts, then dead-lettered to ``llmtap:notify:dlq``.
An entry is acknowledged once every receiver has it (delivered or dead-lettered); each
receiver's done entries are remembered, so a redelivered entry skips them. Silenced alerts are
acknowledged without delivery. Counters per receiver live in ``llmtap:notify:stats:<name>``.
Secrets (webhook secrets, Slack URLs and tokens) are never logged or repr'd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import redis.asyncio as aredis
from redis.exceptions import ResponseError

from llmtap import keys
from llmtap.analyzers.rules import silenced
from llmtap.consumers.runtime.consumer import consumer_name

log = logging.getLogger(__name__)

# HTTP answers that no retry can fix: dead-lettered at once.
NEVER_RETRY: Final = frozenset({400, 401, 403, 404, 405, 410, 413, 422})
# The counters name under which alerts that no receiver's routes match are counted.
UNROUTED: Final = "_unrouted"


@dataclass(frozen=True)
class RetryPolicy:
    """How one receiver retries: attempts in all, backoff base and cap (s), jitter share."""

    attempts: int = 8
    base_s: float = 0.5
    cap_s: float = 300.0
    jitter: float = 0.2
    timeout_s: float = 5.0
    max_retry_after_s: float = 900.0


def backoff(attempt: int, policy: RetryPolicy, rand: float) -> float:
    """Return the wait (s) before attempt ``attempt + 1``: ``base * 2**(attempt-1)``, capped.

    ``rand`` in [0, 1) spreads it by ``±jitter`` so receivers that come back are not hit by
    every sender at once.
    """
    delay = min(policy.cap_s, policy.base_s * 2.0 ** max(attempt - 1, 0))
    return max(0.0, delay * (1.0 + policy.jitter * (2.0 * rand - 1.0)))


@dataclass(frozen=True)
class Route:
    """Which alerts a receiver gets: any of ``severities`` (empty: all) and every matcher."""

    severities: tuple[str, ...] = ()
    matchers: Mapping[str, str] = field(default_factory=dict)

    def matches(self, alert: Mapping[str, Any]) -> bool:
        """True when the alert's severity and labels (plus ``rule``) fit this route."""
        if self.severities and alert.get("severity") not in self.severities:
            return False
        return silenced(alert_labels(alert), self.matchers)


@dataclass(frozen=True)
class Receiver:
    """One destination: a webhook (``url``, ``secret``) or Slack (``url`` or ``token`` +
    ``channel``; ``base_url`` points the bot client elsewhere, for tests)."""

    name: str
    kind: str
    url: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    channel: str | None = None
    base_url: str | None = None
    routes: tuple[Route, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    group_by: tuple[str, ...] = ("rule",)
    group_wait_s: float = 0.0
    group_interval_s: float = 0.0

    @property
    def grouping(self) -> bool:
        """True when notifications are batched per group (group_wait or group_interval set)."""
        return self.group_wait_s > 0 or self.group_interval_s > 0

    def group_key(self, alert: Mapping[str, Any]) -> str:
        """Return the group an alert belongs to at this receiver: its group_by label values."""
        labels = alert_labels(alert)
        return json.dumps([labels.get(label, "") for label in self.group_by])

    def wants(self, alert: Mapping[str, Any]) -> bool:
        """True when any route matches (no routes: every alert)."""
        return not self.routes or any(route.matches(alert) for route in self.routes)


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: delivered, or why not and whether (and when) to try again."""

    ok: bool
    reason: str = ""
    retry: bool = True
    retry_after_s: float | None = None


class Sender(Protocol):
    """Delivers one alert document to one receiver, once (no retries inside)."""

    async def send(self, alerts: Sequence[Mapping[str, Any]], now: float) -> Outcome:
        """Attempt delivery of one message (one alert, or a group); never raises for transport
        errors."""

    async def close(self) -> None:
        """Release connections."""


def alert_labels(alert: Mapping[str, Any]) -> dict[str, str]:
    """Return an alert's labels plus ``rule`` and ``severity``, for routes and silences."""
    labels = dict(alert.get("labels") or {})
    labels.setdefault("rule", str(alert.get("rule", "")))
    labels.setdefault("severity", str(alert.get("severity", "")))
    return labels


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """Return a Retry-After header in seconds (integer form), or None."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            with contextlib.suppress(ValueError):
                return max(0.0, float(raw))
    return None


def http_outcome(status: int, headers: Mapping[str, Any]) -> Outcome:
    """Return the outcome of an HTTP answer: 2xx ok, NEVER_RETRY final, others retried."""
    if 200 <= status < 300:
        return Outcome(True)
    reason = f"HTTP {status}"
    if status in NEVER_RETRY:
        return Outcome(False, reason, retry=False)
    return Outcome(False, reason, retry_after_s=retry_after(headers))


# --- the delivery engine ---------------------------------------------------------------


@dataclass
class Held:
    """An outbox entry in flight: its alert and the receivers that still have to take it."""

    entry_id: bytes
    alert: dict[str, Any]
    remaining: set[str]


@dataclass(frozen=True)
class NotifierOptions:
    """Reader settings: batch size, block time, reclaim idle time, in-flight cap."""

    read_count: int = 100
    block_ms: int = 1000
    claim_idle_s: float = 60.0
    max_in_flight: int = 10_000
    stream: str = keys.NOTIFY


Sleeper = Callable[[float], Awaitable[None]]


class Notifier:
    """One consumer of the notifier group. ``await run(stop)``; see the module docstring."""

    def __init__(
        self,
        client: aredis.Redis,
        receivers: Sequence[Receiver],
        senders: Mapping[str, Sender],
        *,
        options: NotifierOptions | None = None,
        name: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleeper | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.receivers = {r.name: r for r in receivers}
        self.senders = dict(senders)
        self.options = options or NotifierOptions()
        self.name = name or consumer_name()
        self.clock = clock
        self.rand = rand
        self.counters: dict[str, dict[str, int]] = {r: {} for r in self.receivers}
        self._sleep = sleep
        self._queues: dict[str, asyncio.Queue[Held]] = {}
        self._held: dict[bytes, Held] = {}
        self._groups: dict[tuple[str, str], list[Held]] = {}
        self._flushers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._group_sent: dict[tuple[str, str], float] = {}
        self._stop = asyncio.Event()

    async def setup(self) -> None:
        """Create the group at id 0 (MKSTREAM) unless it exists."""
        try:
            await self.client.xgroup_create(
                self.options.stream, keys.GROUP_NOTIFIER, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self, stop: asyncio.Event, *, burst: bool = False) -> None:
        """Deliver until ``stop`` is set (with ``burst``: until nothing is left to deliver)."""
        self._stop = stop
        await self.setup()
        if not self.receivers:  # alive (healthy) but leaving the outbox alone
            await self._idle(stop, burst)
            return
        self._queues = {name: asyncio.Queue() for name in self.receivers}
        tasks = [asyncio.create_task(self._serve(name)) for name in self.receivers]
        try:
            await self._read_loop(stop, burst)
        finally:
            stop.set()
            tasks += self._flushers.values()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=10)

    async def _read_loop(self, stop: asyncio.Event, burst: bool) -> None:
        await self._take(await self._reclaim())
        next_reclaim = time.monotonic() + self.options.claim_idle_s / 2
        next_beat = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + keys.HEARTBEAT_TTL_S / 3
                await self._heartbeat()
            if len(self._held) >= self.options.max_in_flight:
                await asyncio.sleep(0.01)
                continue
            block = None if burst else self.options.block_ms
            entries = await self._read(block)
            await self._take(entries)
            if burst and not entries and not self._held:
                return
            if burst and not entries:
                await asyncio.sleep(0.005)
            if time.monotonic() >= next_reclaim:
                next_reclaim = time.monotonic() + self.options.claim_idle_s / 2
                await self._take(await self._reclaim())

    async def _idle(self, stop: asyncio.Event, burst: bool) -> None:
        while not stop.is_set() and not burst:
            await self._heartbeat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), keys.HEARTBEAT_TTL_S / 3)

    async def _heartbeat(self) -> None:
        value = json.dumps({"ts": round(time.time(), 3), "held": len(self._held)})
        key = keys.heartbeat(keys.GROUP_NOTIFIER, self.name)
        await self.client.set(key, value, ex=keys.HEARTBEAT_TTL_S)

    async def _read(self, block_ms: int | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply: Any = await self.client.xreadgroup(
            keys.GROUP_NOTIFIER,
            self.name,
            {self.options.stream: ">"},
            count=self.options.read_count,
            block=block_ms,
        )
        return [(i, f) for i, f in reply[0][1] if f] if reply else []

    async def _reclaim(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        idle_ms = int(self.options.claim_idle_s * 1000)
        reply: Any = await self.client.xautoclaim(
            self.options.stream, keys.GROUP_NOTIFIER, self.name, idle_ms, "0-0", count=1000
        )
        return [(i, f) for i, f in reply[1] if f and i not in self._held]

    async def _take(self, entries: Sequence[tuple[bytes, Mapping[bytes, bytes]]]) -> None:
        if not entries:
            return
        matchers = await self._silences()
        for entry_id, fields in entries:
            await self._dispatch(entry_id, fields, matchers)

    async def _dispatch(
        self, entry_id: bytes, fields: Mapping[bytes, bytes], silences: list[dict[str, str]]
    ) -> None:
        try:
            alert = json.loads(fields[b"n"])
        except (KeyError, ValueError):
            raw = fields.get(b"n", b"")
            await self._dead_letter("*", entry_id, raw, "undecodable outbox entry")
            await self._ack(entry_id)
            return
        labels = alert_labels(alert)
        if any(silenced(labels, m) for m in silences):
            await self._count_all(alert, "silenced")
            await self._ack(entry_id)
            return
        targets = {name for name, r in self.receivers.items() if r.wants(alert)}
        if not targets:
            await self._count(UNROUTED, "unrouted")
        targets -= await self._already_done(entry_id, targets)
        if not targets:
            await self._ack(entry_id)
            return
        held = self._held[entry_id] = Held(entry_id, alert, targets)
        for name in sorted(targets):
            self._queues[name].put_nowait(held)

    async def _already_done(self, entry_id: bytes, targets: set[str]) -> set[str]:
        names = sorted(targets)
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.sismember(keys.notify_done(name), entry_id.decode())
        flags = await pipe.execute()
        return {name for name, flag in zip(names, flags, strict=True) if flag}

    async def _silences(self) -> list[dict[str, str]]:
        ids: list[bytes] = await self.client.zrangebyscore(  # type: ignore[assignment]
            keys.SILENCES, self.clock(), "+inf"
        )
        if not ids:
            return []
        raw = await self.client.mget([keys.silence(_text(i)) for i in ids])
        out = []
        for item in raw:
            if item:
                doc = json.loads(item)
                if doc.get("starts_at", 0) <= self.clock() < doc.get("ends_at", 0):
                    out.append(doc["matchers"])
        return out

    async def _serve(self, name: str) -> None:
        queue, receiver = self._queues[name], self.receivers[name]
        # Checks stop too: a cancellation can be swallowed by a client library mid-request.
        while not self._stop.is_set():
            held = await queue.get()
            if receiver.grouping:
                self._buffer(name, receiver.group_key(held.alert), held)
            else:
                await self._deliver(name, [held])

    def _buffer(self, name: str, group: str, held: Held) -> None:
        """Add to a group's buffer, starting its flusher unless one runs."""
        buffer = self._groups.setdefault((name, group), [])
        buffer.append(held)
        if len(buffer) == 1 and (name, group) not in self._flushers:
            task = asyncio.create_task(self._flush_group(name, group))
            self._flushers[name, group] = task

    async def _flush_group(self, name: str, group: str) -> None:
        """Alertmanager's timing: wait group_wait for a new group, then group_interval between
        messages while the group keeps changing."""
        receiver, last = self.receivers[name], self._group_sent.get((name, group))
        try:
            wait = receiver.group_wait_s if last is None else last + receiver.group_interval_s
            while self._groups.get((name, group)):
                await self._pause(wait if last is None else max(0.0, wait - self.clock()))
                batch, self._groups[name, group] = self._groups[name, group], []
                await self._deliver(name, batch)
                last = self._group_sent[name, group] = self.clock()
                wait = last + receiver.group_interval_s
        finally:
            self._flushers.pop((name, group), None)

    async def _deliver(self, name: str, batch: list[Held]) -> None:
        receiver, sender = self.receivers[name], self.senders[name]
        attempt = 0
        alerts = [held.alert for held in batch]
        while not self._stop.is_set():
            attempt += 1
            outcome = await sender.send(alerts, self.clock())
            await self._count(name, "attempts")
            if outcome.ok:
                await self._count(name, "delivered", len(batch))
                for held in batch:
                    await self._finish(name, held)
                return
            if not outcome.retry or attempt >= receiver.retry.attempts:
                for held in batch:
                    await self._give_up(name, held, outcome, attempt)
                return
            await self._count(name, "rate_limited" if outcome.retry_after_s else "retried")
            await self._pause(self._delay(receiver.retry, attempt, outcome))

    def _delay(self, policy: RetryPolicy, attempt: int, outcome: Outcome) -> float:
        if outcome.retry_after_s is not None:
            return min(outcome.retry_after_s, policy.max_retry_after_s)
        return backoff(attempt, policy, self.rand())

    async def _pause(self, delay: float) -> None:
        if self._sleep is not None:
            await self._sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    async def _give_up(self, name: str, held: Held, outcome: Outcome, attempts: int) -> None:
        log.warning(
            "receiver %s: giving up on %s after %d attempts (%s)",
            name,
            held.alert.get("idempotency_key"),
            attempts,
            outcome.reason,
        )
        raw = json.dumps(held.alert).encode()
        await self._dead_letter(name, held.entry_id, raw, outcome.reason)
        await self._count(name, "dead_lettered")
        await self._finish(name, held)

    async def _finish(self, name: str, held: Held) -> None:
        done = keys.notify_done(name)
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(done, held.entry_id)
        pipe.expire(done, keys.NOTIFY_DONE_TTL_S)
        await pipe.execute()
        held.remaining.discard(name)
        if not held.remaining:
            await self._ack(held.entry_id)
            self._held.pop(held.entry_id, None)  # after the ack: burst mode ends on an empty _held

    async def _ack(self, entry_id: bytes) -> None:
        await self.client.xack(self.options.stream, keys.GROUP_NOTIFIER, entry_id)

    async def _dead_letter(self, receiver: str, entry_id: bytes, raw: bytes, reason: str) -> None:
        fields: dict[Any, Any] = {
            "receiver": receiver,
            "reason": reason,
            "id": entry_id,
            "n": raw,
        }
        await self.client.xadd(keys.NOTIFY_DLQ, fields, maxlen=keys.DLQ_MAXLEN, approximate=True)

    async def _count(self, name: str, counter: str, n: int = 1) -> None:
        mine = self.counters.setdefault(name, {})
        mine[counter] = mine.get(counter, 0) + n
        await self.client.hincrby(keys.notify_stats(name), counter, n)

    async def _count_all(self, alert: Mapping[str, Any], counter: str) -> None:
        for name, receiver in self.receivers.items():
            if receiver.wants(alert):
                await self._count(name, counter)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def run_notifier(
    url: str,
    stop: asyncio.Event,
    *,
    burst: bool = False,
    receivers: Sequence[Receiver] | None = None,
    claim_idle_s: float = 60.0,
) -> dict[str, dict[str, int]]:
    """Deliver the outbox on ``url`` until ``stop`` (or drained, with ``burst``).

    Receivers default to the environment's and the rules file's. Returns the counters per
    receiver. Raises SettingsError for a bad receiver configuration.
    """
    from llmtap.consumers.notify import receivers as config

    chosen = list(config.receivers_from_env() if receivers is None else receivers)
    if not chosen:
        log.warning("no alert receivers configured: notifications stay in %s", keys.NOTIFY)
    senders = config.build_senders(chosen)
    client = aredis.Redis.from_url(url)
    notifier = Notifier(client, chosen, senders, options=NotifierOptions(claim_idle_s=claim_idle_s))
    try:
        await notifier.run(stop, burst=burst)
    finally:
        for sender in senders.values():
            await sender.close()
        await client.aclose()
    return notifier.counters
