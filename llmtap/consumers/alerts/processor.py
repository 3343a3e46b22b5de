"""The alerts worker: per-call rules on the events stream, windowed rules and resolution on a tick.

Per-call rules run in :class:`AlertsProcessor`, a consumer-group processor: each call event that
breaks a rule becomes an alert step committed with the event's XACK, so each event alerts once
whatever the replicas or crashes. :class:`Evaluator` runs on a tick (``LLMTAP_ALERT_TICK_S``):
it reads the cost and latency aggregates for the windowed rules, steps their fingerprints, and
resolves per-call alerts not seen for ``resolve_after``. Every step is the atomic Lua step of
:mod:`.alert_state`, so two evaluators enqueue each notification once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import redis
import redis.asyncio as aredis

from llmtap import events, keys
from llmtap.analyzers.rules import (
    Observation,
    Rule,
    RuleError,
    WindowData,
    baseline_span,
    evaluate_call,
    evaluate_window,
    window_span,
)
from llmtap.consumers.alerts.rules_file import load_rules
from llmtap.consumers.alerts.state import AlertStore, Outbox, observed, step_args
from llmtap.consumers.notify.notifier import Receiver, run_notifier
from llmtap.consumers.runtime import engine
from llmtap.consumers.runtime.commit import Writes
from llmtap.consumers.runtime.config import RuntimeConfig
from llmtap.consumers.runtime.consumer import Consumer
from llmtap.read import query
from llmtap.settings import Settings, SettingsError
from llmtap.webhooks import LocalReceiver

log = logging.getLogger(__name__)

RULES_ENV: Final = "LLMTAP_ALERT_RULES"
TICK_ENV: Final = "LLMTAP_ALERT_TICK_S"
DEFAULT_TICK_S: Final = 5.0
Clock = Callable[[], float]


@functools.lru_cache(maxsize=4)
def _cached_rules(path: str | None, mtime: float, settings: Settings) -> tuple[Rule, ...]:
    return tuple(load_rules(path, settings))


def rules_from_env(environ: Mapping[str, str] | None = None) -> list[Rule]:
    """Return the default rules plus those of ``LLMTAP_ALERT_RULES`` (read again if it changed).

    Raises SettingsError naming the file, the line and the reason for a bad rules file.
    """
    env = os.environ if environ is None else environ
    path = env.get(RULES_ENV) or None
    try:
        mtime = os.stat(path).st_mtime if path else 0.0
        return list(_cached_rules(path, mtime, Settings.from_env(env)))
    except (RuleError, OSError) as exc:
        raise SettingsError(f"{RULES_ENV}: {exc}") from None


def tick_from_env(environ: Mapping[str, str] | None = None) -> float:
    """Return ``LLMTAP_ALERT_TICK_S`` (default 5); raise SettingsError for a bad value."""
    raw = (os.environ if environ is None else environ).get(TICK_ENV)
    if raw is None:
        return DEFAULT_TICK_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.01 <= value <= 3600:
        raise SettingsError(f"{TICK_ENV}={raw!r} is invalid; accepted values: 0.01 to 3600 s")
    return value


class AlertsProcessor:
    """Folds call events into alert steps for the per-call rules (see the module docstring)."""

    group = keys.GROUP_ALERTS
    wants_calls = True
    wants_rollups = False

    def __init__(self, rules: Sequence[Rule], outbox: Outbox | None = None) -> None:
        self.rules = [rule for rule in rules if rule.per_call]
        self.outbox = outbox or Outbox()
        # Per fingerprint the first and the last observation of the unit: enough to fire
        # (first) and to keep the alert fresh (last); the ones between change nothing.
        self._seen: dict[str, list[Observation]] = {}

    def add_call(self, event: events.CallEvent) -> None:
        """Evaluate the per-call rules on one call event."""
        for obs in evaluate_call(self.rules, event):
            held = self._seen.setdefault(obs.fingerprint, [])
            if len(held) < 2:
                held.append(obs)
            else:
                held[1] = obs

    def add_rollup(self, event: events.RollupEvent) -> None:
        """Rollups carry no per-call detail: nothing to evaluate."""

    def writes(self) -> Writes:
        """Return the alert steps of the unit, in event order per fingerprint."""
        writes = Writes()
        writes.alerts = [observed(obs, self.outbox) for held in self._seen.values() for obs in held]
        return writes

    def clear(self) -> None:
        """Forget the unit's observations."""
        self._seen.clear()


def read_window(client: redis.Redis, rule: Rule, now: float) -> WindowData:
    """Read the aggregates a windowed rule needs at ``now``."""
    since, until = window_span(rule, now)
    current = _read_rows(client, rule, since, until)
    baseline: dict[str, dict[str, float]] = {}
    if rule.kind == "anomaly":
        baseline = _read_rows(client, rule, *baseline_span(rule, now))
    return WindowData(current, baseline)


def _read_rows(
    client: redis.Redis, rule: Rule, since: float, until: float
) -> dict[str, dict[str, float]]:
    if rule.kind == "p95_latency_above" or (rule.kind == "anomaly" and rule.metric == "latency"):
        rows = query.latency_percentiles(client, since, until, qs=(0.95,), by=_latency_by(rule))
        return {f"{row['backend']}/{row['model']}": {"p95": float(row["p95"])} for row in rows}
    by_value = query.cost_by(client, rule.dimension, since, until)
    return {
        group: {"cost_usd": row["cost_usd"], "calls": row["calls"], "errors": row["errors"]}
        for group, row in by_value.items()
    }


def _latency_by(rule: Rule) -> str:
    labels = {*rule.group_by, *rule.filters}
    if "model" in labels:
        return "model"
    return "backend" if "backend" in labels else "all"


class Evaluator:
    """The tick: windowed rules and per-call resolution. ``now`` is always passed in."""

    def __init__(
        self,
        client: aredis.Redis,
        reader: redis.Redis,
        rules: Sequence[Rule],
        outbox: Outbox | None = None,
    ) -> None:
        self.store = AlertStore(client, outbox)
        self.reader = reader
        self.rules = list(rules)

    async def tick(self, now: float) -> int:
        """Evaluate every rule at ``now``; return the notifications enqueued."""
        items: list[dict[str, Any]] = []
        for rule in self.rules:
            if rule.per_call:
                items += await self._stale(rule, now)
            else:
                items += await self._window(rule, now)
        return await self.store.step(items)

    async def _window(self, rule: Rule, now: float) -> list[dict[str, Any]]:
        data = await asyncio.to_thread(read_window, self.reader, rule, now)
        found = {obs.fingerprint: obs for obs in evaluate_window(rule, data, now)}
        outbox = self.store.outbox
        items = [observed(obs, outbox) for obs in found.values()]
        for fp in await self.store.active(rule.name):
            if fp not in found:
                items.append(step_args(rule, fp, now, outbox))
        return items

    async def _stale(self, rule: Rule, now: float) -> list[dict[str, Any]]:
        stale_before = now - rule.resolve_after_s
        return [
            step_args(rule, fp, now, self.store.outbox, stale_before=stale_before)
            for fp, last_seen in (await self.store.active(rule.name)).items()
            if last_seen <= stale_before
        ]


async def run_ticks(
    url: str,
    stop: asyncio.Event,
    *,
    rules: Sequence[Rule] | None = None,
    interval_s: float | None = None,
    clock: Clock = time.time,
    once: bool = False,
) -> None:
    """Tick the evaluator every ``interval_s`` until ``stop`` (``once``: a single tick).

    Redis errors in a tick are logged, not fatal: the next tick tries again.
    """
    rules = rules_from_env() if rules is None else rules
    interval = tick_from_env() if interval_s is None else interval_s
    client, reader = aredis.Redis.from_url(url), redis.Redis.from_url(url)
    evaluator = Evaluator(client, reader, rules)
    try:
        while not stop.is_set():
            try:
                await evaluator.tick(clock())
            except (redis.RedisError, OSError) as exc:
                log.warning("alert tick failed (%s); next in %.1f s", exc, interval)
            if once:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        await client.aclose()
        reader.close()


# --- for `llmtap demo` -------------------------------------------------------------------

DEMO_SECRET: Final = "llmtap-demo-secret"


def demo_rules(slow_call_s: float) -> list[Rule]:
    """Return the demo's rule: a call slower than ``slow_call_s``, per backend and model."""
    return [
        Rule(
            "demo-slow-call",
            "latency_above",
            slow_call_s,
            group_by=("backend", "model"),
            resolve_after_s=60.0,
        )
    ]


@contextlib.contextmanager
def demo_receiver() -> Iterator[tuple[LocalReceiver, Receiver]]:
    """Yield a signature-checking webhook receiver on loopback and its Receiver config."""
    with LocalReceiver(secret=DEMO_SECRET) as rx:
        yield rx, Receiver("demo-webhook", "webhook", url=rx.url, secret=DEMO_SECRET)


async def demo_cycle(url: str, rules: Sequence[Rule], receiver: Receiver, now: float) -> int:
    """Fire, resolve and deliver once: drain the stream with the alerts worker, tick at
    ``now`` + the longest resolve_after (a simulated quiet spell, so firing alerts resolve),
    then drain the outbox to ``receiver``. Returns the alerts delivered."""
    client = aredis.Redis.from_url(url)
    reader = redis.Redis.from_url(url)
    try:
        consumer = Consumer(client, lambda: AlertsProcessor(rules), RuntimeConfig(block_ms=100))
        await engine.run_loop(consumer, asyncio.Event(), burst=True)
        quiet = max((rule.resolve_after_s for rule in rules if rule.per_call), default=0.0)
        await Evaluator(client, reader, rules).tick(now + quiet)
        counters = await run_notifier(url, asyncio.Event(), burst=True, receivers=[receiver])
    finally:
        await client.aclose()
        reader.close()
    return sum(c.get("delivered", 0) for c in counters.values())


def demo_lines(rx: LocalReceiver) -> list[str]:
    """Return one line per alert the demo receiver got (verified): status, rule, labels."""
    lines = []
    for message in rx.alerts():
        for alert in message["alerts"]:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
            when = alert["endsAt"] or alert["startsAt"]
            lines.append(f"  {alert['status']:9s} {alert['rule']} [{labels}] at {when}")
    return lines
