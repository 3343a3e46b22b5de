"""Alert state in Redis: one Lua step per observation, Alertmanager's pending → firing → resolved.

The step reads a fingerprint's state hash, applies ``for``, ``repeat_interval`` and resolution,
and when a notification is due appends it to ``llmtap:notify`` in the same atomic step. So a
second evaluator (or a restarted one) that observes the same condition finds the state already
moved and sends nothing: each notification is enqueued once. The same Lua function
(``lua/alert_step.lua``) runs inside the consumer commit (per-call alerts, acknowledged with
their events) and in :class:`AlertStore` (windowed alerts and resolutions, on the tick).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aredis
from redis.commands.core import AsyncScript

from llmtap import keys, notify
from llmtap.analyzers.rules import Observation, Rule
from llmtap.consumers.runtime.commit import ONE_SLOT


def alert_step_script() -> str:
    """Return the Lua source of ``alert_step(o)`` (``lua/alert_step.lua``): the function the
    consumer commit and :func:`step_script` both call; it returns 1 when it enqueued."""
    return _lua("alert_step.lua")


def step_script() -> str:
    """Return the script :class:`AlertStore` runs: ``alert_step`` over a JSON array (ARGV[1]),
    confined to one slot (the control slot) like every worker script."""
    return ONE_SLOT + alert_step_script() + _lua("step_batch.lua")


@functools.cache
def _lua(name: str) -> str:
    return (
        resources.files("llmtap.consumers.alerts").joinpath("lua", name).read_text(encoding="utf-8")
    )


@dataclass(frozen=True)
class Outbox:
    """Where notifications go: the stream, its approximate cap, and the state TTL."""

    stream: str = keys.NOTIFY
    maxlen: int = keys.NOTIFY_MAXLEN
    state_ttl_s: int = keys.ALERT_STATE_TTL_S


def step_args(
    rule: Rule,
    fingerprint: str,
    now: float,
    outbox: Outbox,
    doc: Mapping[str, Any] | None = None,
    stale_before: float | None = None,
) -> dict[str, Any]:
    """Return the Lua step input for one fingerprint: active with ``doc``, inactive without.

    An inactive step with ``stale_before`` does nothing if the alert was seen after that time.
    """
    out: dict[str, Any] = {
        "key": keys.alert_state(fingerprint),
        "idx": keys.alert_active(rule.name),
        "states": keys.ALERT_STATES,
        "fp": fingerprint,
        "rule": rule.name,
        "active": doc is not None,
        "now": now,
        "for_s": rule.for_s,
        "repeat_s": rule.repeat_interval_s,
        "resolve": rule.send_resolved,
        "ttl": outbox.state_ttl_s,
        "stream": outbox.stream,
        "maxlen": outbox.maxlen,
        **notify.alert_step_fields(),
    }
    if doc is not None:
        out["doc"] = dict(doc)
    if stale_before is not None:
        out["stale_before"] = stale_before
    return out


def observed(obs: Observation, outbox: Outbox) -> dict[str, Any]:
    """Return the Lua step input for an observation (the condition holds)."""
    return step_args(obs.rule, obs.fingerprint, obs.at, outbox, obs.document())


class AlertStore:
    """Runs the alert step script for a batch of observations (EVALSHA, reloaded if needed)."""

    def __init__(self, client: aredis.Redis, outbox: Outbox | None = None) -> None:
        self.client = client
        self.outbox = outbox or Outbox()
        self._script: AsyncScript = client.register_script(step_script())

    async def step(self, items: Sequence[Mapping[str, Any]]) -> int:
        """Apply each step in order, atomically; return how many notifications were enqueued."""
        if not items:
            return 0
        doc = json.dumps(list(items), separators=(",", ":"), allow_nan=False)
        # Every key a step touches is a control key: the outbox names the slot on a cluster.
        return int(await self._script(keys=[self.outbox.stream], args=[doc]))

    async def active(self, rule: str) -> dict[str, float]:
        """Return a rule's pending and firing fingerprints with their last-seen time."""
        rows: Any = await self.client.zrange(keys.alert_active(rule), 0, -1, withscores=True)
        return {_text(fp): float(score) for fp, score in rows}

    async def index_states(self) -> int:
        """Add every alert state hash to ``keys.ALERT_STATES`` that is not in it (hashes a
        layout-3 worker wrote before the index existed); return how many were added."""
        added = 0
        now = float((await self.client.time())[0])
        async for name in self.client.scan_iter(match=keys.alert_state("*"), count=10_000):
            ttl = await self.client.ttl(name)
            fingerprint = _text(name).removeprefix(keys.alert_state(""))
            expires = now + (ttl if ttl > 0 else keys.ALERT_STATE_TTL_S)
            new = await self.client.zadd(keys.ALERT_STATES, {fingerprint: expires}, nx=True)
            added += int(new or 0)
        return added

    async def state(self, fingerprint: str) -> dict[str, str]:
        """Return the state hash of one fingerprint (empty when unknown)."""
        raw = await self.client.hgetall(keys.alert_state(fingerprint))
        return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
