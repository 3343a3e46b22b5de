"""The alerts tick: windowed rules and per-call resolution, every ``LLMTAP_ALERT_TICK_S``.

:class:`Evaluator` reads the cost and latency aggregates each windowed rule needs, steps their
fingerprints, and resolves per-call alerts not seen for ``resolve_after``. Every step is the
atomic Lua step of :mod:`.state`, so two evaluators enqueue each notification once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import redis
import redis.asyncio as aredis

from llmtap.analyzers import burn
from llmtap.analyzers.rules import (
    Rule,
    WindowData,
    baseline_span,
    evaluate_window,
    window_span,
)
from llmtap.connection import async_client, sync_client
from llmtap.consumers.alerts.rules_file import rules_from_env
from llmtap.consumers.alerts.state import AlertStore, Outbox, observed, step_args
from llmtap.read import query
from llmtap.settings import SettingsError, environ_or_process

log = logging.getLogger(__name__)

TICK_ENV: Final = "LLMTAP_ALERT_TICK_S"
DEFAULT_TICK_S: Final = 5.0
Clock = Callable[[], float]


def tick_from_env(environ: Mapping[str, str] | None = None) -> float:
    """Return ``LLMTAP_ALERT_TICK_S`` (default 5); raise SettingsError for a bad value."""
    raw = environ_or_process(environ).get(TICK_ENV)
    if raw is None:
        return DEFAULT_TICK_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.01 <= value <= 3600:
        raise SettingsError(f"{TICK_ENV}={raw!r} is invalid; accepted values: 0.01 to 3600 s")
    return value


def read_window(client: redis.Redis, rule: Rule, now: float) -> WindowData:
    """Read the aggregates a windowed rule needs at ``now``."""
    since, until = window_span(rule, now)
    current = _read_rows(client, rule, since, until)
    baseline: dict[str, dict[str, float]] = {}
    if rule.kind == "anomaly":
        baseline = _read_rows(client, rule, *baseline_span(rule, now))
    daily: dict[str, dict[int, float]] = {}
    if rule.kind == "projected_month_end_above":
        daily = _daily_spend(client, rule, now)
    return WindowData(current, baseline, daily)


def _daily_spend(client: redis.Redis, rule: Rule, now: float) -> dict[str, dict[int, float]]:
    """USD per group and UTC day, over the days :func:`burn.project_month` reads."""
    today = int(now // burn.DAY) * burn.DAY
    daily: dict[str, dict[int, float]] = {}
    for day in range(burn.history_start(now), today + 1, burn.DAY):
        for group, row in _read_rows(client, rule, day, min(day + burn.DAY, now)).items():
            daily.setdefault(group, {})[day] = row["cost_usd"]
    return daily


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
    client, reader = async_client(url), sync_client(url)
    evaluator = Evaluator(client, reader, rules)
    try:
        with contextlib.suppress(redis.RedisError, OSError):  # the first tick says why
            await evaluator.store.index_states()
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
