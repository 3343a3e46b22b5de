"""Alert state in Redis: one Lua step per observation, Alertmanager's pending → firing → resolved.

The step reads a fingerprint's state hash, applies ``for``, ``repeat_interval`` and resolution,
and when a notification is due appends it to ``llmtap:notify`` in the same atomic step. So a
second evaluator (or a restarted one) that observes the same condition finds the state already
moved and sends nothing: each notification is enqueued once. The same Lua function runs inside
the consumer commit (per-call alerts, acknowledged with their events) and in
:class:`AlertStore` (windowed alerts and resolutions, on the evaluator's tick).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aredis
from redis.commands.core import AsyncScript

from llmtap import keys
from llmtap.analyzers.rules import Observation, Rule

# alert_step(o) -> 1 when it enqueued a notification. ``o``: key, idx, fp, rule, active, now,
# for_s, repeat_s, resolve (send resolved notifications), ttl, stream, maxlen, doc (the alert
# document; absent when inactive: the stored one is used), stale_before (inactive only: skip
# when the alert was seen after this time).
ALERT_STEP_LUA: Final = r"""
local function alert_enqueue(o, doc, status, starts, seq)
  doc.status = status
  doc.startsAt = starts
  doc.endsAt = (status == 'resolved') and o.now or cjson.null
  doc.sequence = seq
  doc.idempotency_key = o.fp .. ':' .. seq
  doc.version = 1
  redis.call('XADD', o.stream, 'MAXLEN', '~', o.maxlen, '*',
             'n', cjson.encode(doc), 'fp', o.fp)
  return 1
end

local function alert_inactive(o, st)
  -- seen again since the caller decided it was stale: not resolved after all
  if o.stale_before and (tonumber(st[7]) or 0) > o.stale_before then return 0 end
  if st[1] == 'pending' then
    redis.call('DEL', o.key)
    redis.call('ZREM', o.idx, o.fp)
    return 0
  end
  if st[1] ~= 'firing' then return 0 end
  local seq = tonumber(st[5]) or 0
  redis.call('HSET', o.key, 'status', 'resolved', 'ends_at', o.now)
  redis.call('ZREM', o.idx, o.fp)
  redis.call('EXPIRE', o.key, o.ttl)
  if not o.resolve or not st[6] then return 0 end
  redis.call('HSET', o.key, 'seq', seq + 1)
  return alert_enqueue(o, cjson.decode(st[6]), 'resolved', tonumber(st[3]), seq + 1)
end

local function alert_active(o, st)
  local status, since, starts = st[1], tonumber(st[2]), tonumber(st[3])
  local last, seq = tonumber(st[4]), tonumber(st[5]) or 0
  local due = false
  if status == 'firing' then
    due = o.now - last >= o.repeat_s
  elseif status == 'pending' then
    if o.now - since >= o.for_s then due = true; starts = since end
  else
    since = o.now
    status = 'pending'
    if o.for_s <= 0 then due = true; starts = o.now end
  end
  local doc = cjson.encode(o.doc)
  redis.call('HSET', o.key, 'status', due and 'firing' or status, 'since', since,
             'last_seen', o.now, 'rule', o.rule, 'doc', doc)
  redis.call('ZADD', o.idx, o.now, o.fp)
  redis.call('EXPIRE', o.key, o.ttl)
  if not due then return 0 end
  redis.call('HSET', o.key, 'starts_at', starts, 'last_sent', o.now, 'seq', seq + 1)
  return alert_enqueue(o, o.doc, 'firing', starts, seq + 1)
end

local function alert_step(o)
  local st = redis.call('HMGET', o.key, 'status', 'since', 'starts_at', 'last_sent', 'seq', 'doc',
                          'last_seen')
  if o.active then return alert_active(o, st) end
  return alert_inactive(o, st)
end
"""

STEP_SCRIPT: Final = (
    ALERT_STEP_LUA
    + r"""
local n = 0
for _, o in ipairs(cjson.decode(ARGV[1])) do n = n + alert_step(o) end
return n
"""
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
        self._script: AsyncScript = client.register_script(STEP_SCRIPT)

    async def step(self, items: Sequence[Mapping[str, Any]]) -> int:
        """Apply each step in order, atomically; return how many notifications were enqueued."""
        if not items:
            return 0
        doc = json.dumps(list(items), separators=(",", ":"), allow_nan=False)
        return int(await self._script(keys=[], args=[doc]))

    async def active(self, rule: str) -> dict[str, float]:
        """Return a rule's pending and firing fingerprints with their last-seen time."""
        rows: Any = await self.client.zrange(keys.alert_active(rule), 0, -1, withscores=True)
        return {_text(fp): float(score) for fp, score in rows}

    async def state(self, fingerprint: str) -> dict[str, str]:
        """Return the state hash of one fingerprint (empty when unknown)."""
        raw = await self.client.hgetall(keys.alert_state(fingerprint))
        return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
