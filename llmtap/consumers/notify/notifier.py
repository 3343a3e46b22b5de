"""The notifier: delivers ``llmtap:notify`` (alerts and reports) to Slack and signed webhooks.

A consumer group reads the outbox (messages decoded by :mod:`llmtap.notify`); each alert is
routed to the receivers whose routes match (severity, labels), each report to the receivers
that take reports, and put on each receiver's own queue, served by its own task, so a slow or
dead receiver holds up nobody else and each receiver gets notifications in stream order (so in
order per fingerprint). A delivery is retried with :func:`llmtap.retry.backoff` (or after the
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
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aredis
from redis.exceptions import ResponseError

from llmtap import keys, notify
from llmtap.analyzers.rules import silenced
from llmtap.connection import async_client
from llmtap.consumers.notify.model import Outcome, Receiver, Sender, alert_labels
from llmtap.consumers.notify.senders import build_senders
from llmtap.consumers.runtime.consumer import (
    consumer_name,
    create_group,
    group_missing,
    recreate_group,
)
from llmtap.retry import backoff

log = logging.getLogger(__name__)

# The counters name under which alerts that no receiver's routes match are counted.
UNROUTED: Final = "_unrouted"


# --- the delivery engine ---------------------------------------------------------------


@dataclass
class Held:
    """An outbox entry in flight: its message and the receivers that still have to take it."""

    entry_id: bytes
    message: notify.OutboxMessage
    remaining: set[str]

    @property
    def alert(self) -> dict[str, Any]:
        """The message's payload (an alert document, or a report's)."""
        return self.message.payload

    @property
    def is_report(self) -> bool:
        """True for a report message (never grouped, never silenced)."""
        return self.message.kind == "report"


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
        await create_group(self.client, self.options.stream, keys.GROUP_NOTIFIER)

    async def run(self, stop: asyncio.Event, *, burst: bool = False) -> None:
        """Deliver until ``stop`` is set (with ``burst``: until nothing is left to deliver)."""
        # The senders' own stop: set when the read loop ends, whatever ended it, so a restart
        # after a lost connection never reads as the caller having asked to stop.
        self._stop = asyncio.Event()
        await self.setup()
        if not self.receivers:  # alive (healthy) but leaving the outbox alone
            await self._idle(stop, burst)
            return
        self._queues = {name: asyncio.Queue() for name in self.receivers}
        tasks = [asyncio.create_task(self._serve(name)) for name in self.receivers]
        try:
            await self._read_loop(stop, burst)
        finally:
            self._stop.set()
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
        beat = notify.Heartbeat(ts=round(time.time(), 3), held=len(self._held))
        value = notify.encode_heartbeat(beat)
        key = keys.heartbeat(keys.GROUP_NOTIFIER, self.name)
        await self.client.set(key, value, ex=keys.HEARTBEAT_TTL_S)

    async def _read(self, block_ms: int | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        try:
            reply: Any = await self.client.xreadgroup(
                keys.GROUP_NOTIFIER,
                self.name,
                {self.options.stream: ">"},
                count=self.options.read_count,
                block=block_ms,
            )
        except ResponseError as exc:
            await self._recover(exc)
            return []
        return [(i, f) for i, f in reply[0][1] if f] if reply else []

    async def _reclaim(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        idle_ms = int(self.options.claim_idle_s * 1000)
        try:
            reply: Any = await self.client.xautoclaim(
                self.options.stream, keys.GROUP_NOTIFIER, self.name, idle_ms, "0-0", count=1000
            )
        except ResponseError as exc:
            await self._recover(exc)
            return []
        return [(i, f) for i, f in reply[1] if f and i not in self._held]

    async def _recover(self, exc: ResponseError) -> None:
        """Recreate the group if the outbox or the group was deleted; re-raise anything else."""
        if not group_missing(exc):
            raise exc
        await recreate_group(self.client, self.options.stream, keys.GROUP_NOTIFIER)

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
            message = notify.decode_message(fields)
        except notify.OutboxError as exc:
            await self._dead_letter("*", entry_id, exc.raw, exc.reason)
            await self._ack(entry_id)
            return
        if message.kind == "report":
            targets = {name for name, r in self.receivers.items() if "report" in r.takes}
        elif self._silenced(message.payload, silences):
            await self._count_all(message.payload, "silenced")
            await self._ack(entry_id)
            return
        else:
            targets = {name for name, r in self.receivers.items() if r.wants(message.payload)}
        await self._hold(entry_id, message, targets)

    @staticmethod
    def _silenced(alert: Mapping[str, Any], silences: list[dict[str, str]]) -> bool:
        labels = alert_labels(alert)
        return any(silenced(labels, m) for m in silences)

    async def _hold(
        self, entry_id: bytes, message: notify.OutboxMessage, targets: set[str]
    ) -> None:
        """Queue an entry for each target that does not have it yet (none: acknowledge it)."""
        if not targets:
            await self._count(UNROUTED, "unrouted")
        targets -= await self._already_done(entry_id, targets)
        if not targets:
            await self._ack(entry_id)
            return
        held = self._held[entry_id] = Held(entry_id, message, targets)
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
            if receiver.grouping and not held.is_report:
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
        while not self._stop.is_set():
            attempt += 1
            outcome = await self._attempt(sender, batch)
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
            await self._pause(self._delay(receiver, attempt, outcome))

    async def _attempt(self, sender: Sender, batch: list[Held]) -> Outcome:
        """One delivery attempt: a report alone, or a message of one or more alerts."""
        if batch[0].is_report:
            return await sender.send_report(batch[0].alert, self.clock())
        return await sender.send([held.alert for held in batch], self.clock())

    def _delay(self, receiver: Receiver, attempt: int, outcome: Outcome) -> float:
        if outcome.retry_after_s is not None:
            return min(outcome.retry_after_s, receiver.delivery.max_retry_after_s)
        return backoff(attempt, receiver.retry, self.rand())

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
    receivers: Sequence[Receiver],
    claim_idle_s: float = 60.0,
) -> dict[str, dict[str, int]]:
    """Deliver the outbox on ``url`` until ``stop`` (or drained, with ``burst``).

    ``receivers`` are the alert receivers (environment and rules file) and the report
    receivers (``LLMTAP_REPORT_*``), built once at start by the caller. Returns the counters
    per receiver.
    """
    chosen = list(receivers)
    if not chosen:
        log.warning("no receivers configured: notifications stay in %s", keys.NOTIFY)
    elif not any("alert" in r.takes for r in chosen):
        log.warning("no alert receivers configured: alerts are counted as %s", UNROUTED)
    senders = build_senders(chosen)
    client = async_client(url)
    notifier = Notifier(client, chosen, senders, options=NotifierOptions(claim_idle_s=claim_idle_s))
    try:
        await notifier.run(stop, burst=burst)
    finally:
        for sender in senders.values():
            await sender.close()
        await client.aclose()
    return notifier.counters
