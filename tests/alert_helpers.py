"""Helpers for the alert tests: call events, alert steps through the real Lua, notify reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.asyncio as aredis

from llmtap import events, keys, notify
from llmtap.analyzers.rules import Observation, Rule, fingerprint
from llmtap.consumers.alerts.state import AlertStore, Outbox, observed, step_args
from llmtap.consumers.notify.model import DeliveryPolicy, Receiver, Sender
from llmtap.consumers.notify.notifier import Notifier, NotifierOptions
from llmtap.consumers.notify.senders import build_senders
from llmtap.retry import RetryPolicy
from tests.factories import T0, call_event


def call(**overrides: Any) -> events.CallEvent:
    """A valid call event at T0 (openai/gpt-4o, 1 s, $0.01) with the given fields changed."""
    defaults = {"producer_id": "p-1", "end_time": T0 + 1.0, "estimated_cost_usd": 0.01}
    return call_event(**{**defaults, **overrides})


def step(url: str, items: Sequence[dict[str, Any]]) -> int:
    """Run alert steps through the real Lua script; return the notifications enqueued."""

    async def go() -> int:
        client = aredis.Redis.from_url(url)
        try:
            return await AlertStore(client).step(items)
        finally:
            await client.aclose()

    return asyncio.run(go())


def active(url: str, rule: Rule, labels: dict[str, str], now: float, value: float = 2.0) -> int:
    """Observe ``rule`` holding for ``labels`` at ``now``; return notifications enqueued."""
    obs = Observation(rule, labels, value, rule.threshold, now)
    return step(url, [observed(obs, Outbox())])


def inactive(url: str, rule: Rule, labels: dict[str, str], now: float) -> int:
    """Observe ``rule`` no longer holding for ``labels`` at ``now``."""
    return step(url, [step_args(rule, fingerprint(rule.name, labels), now, Outbox())])


def notifications(r: redis.Redis) -> list[dict[str, Any]]:
    """Return every alert document in the notify stream, oldest first."""
    return [notify.decode_message(fields).payload for _, fields in r.xrange(keys.NOTIFY)]


def webhook(name: str, url: str, secret: str | None = "s3cret", **policy: Any) -> Receiver:
    """A webhook receiver with a fast retry policy (the given fields changed; ``timeout_s``
    is its delivery policy's)."""
    values: dict[str, Any] = {"attempts": 5, "base_s": 0.01, "cap_s": 0.05}
    timeout_s = float(policy.pop("timeout_s", 2.0))
    values.update(policy)
    return Receiver(
        name,
        "webhook",
        url=url,
        secret=secret,
        retry=RetryPolicy(**values),
        delivery=DeliveryPolicy(timeout_s=timeout_s),
    )


def deliver(
    url: str,
    receivers: Sequence[Receiver],
    *,
    until: Callable[[], bool] | None = None,
    senders: dict[str, Sender] | None = None,
    sleeps: list[float] | None = None,
    sleep: Callable[[float], Any] | None = None,
    clock: Callable[[], float] | None = None,
    deadline_s: float = 60.0,
    claim_idle_s: float = 60.0,
) -> Notifier:
    """Run a notifier until ``until()`` holds (default: burst until drained); return it.

    Retry waits are recorded in ``sleeps`` and not slept, so no test waits on a clock.
    """

    async def fake_sleep(delay: float) -> None:
        if sleeps is not None:
            sleeps.append(delay)
        await asyncio.sleep(0)

    async def go() -> Notifier:
        client = aredis.Redis.from_url(url)
        chosen = senders or build_senders(list(receivers))
        kwargs: dict[str, Any] = {
            "sleep": sleep or fake_sleep,
            "options": NotifierOptions(block_ms=20, claim_idle_s=claim_idle_s),
        }
        if clock is not None:
            kwargs["clock"] = clock
        notifier = Notifier(client, receivers, chosen, **kwargs)
        stop = asyncio.Event()
        try:
            if until is None:
                await asyncio.wait_for(notifier.run(stop, burst=True), deadline_s)
            else:
                await _run_until(notifier, stop, until, deadline_s)
        finally:
            for sender in chosen.values():
                await sender.close()
            await client.aclose()
        return notifier

    return asyncio.run(go())


async def _run_until(
    notifier: Notifier, stop: asyncio.Event, until: Callable[[], bool], deadline_s: float
) -> None:
    task = asyncio.create_task(notifier.run(stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    try:
        while not until():
            if loop.time() > deadline or task.done():
                raise AssertionError("condition not met while the notifier ran")
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


RULE_DOC = "rules:\n  - {name: failing, kind: error, severity: critical}\n"
