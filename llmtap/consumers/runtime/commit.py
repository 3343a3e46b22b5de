"""The atomic commit: one Lua script applies a unit's writes and acknowledges its entries.

A unit is every entry a consumer merged since its last commit. The script first checks that each
entry id is still pending *and owned by this consumer* (a reclaimer may have taken it with
XAUTOCLAIM, or already acknowledged it) and that no rollup in the unit was counted before. If
anything fails a check it writes nothing and returns the offending ids and rollups, so the
caller rebuilds the unit without them and commits again. Otherwise it records the rollups as
counted, applies the increments, min/max updates, sorted-set and latest-value writes, sets the
TTLs, appends the dead letters, bumps the group's counters and XACKs every id, all in one step:
a crash anywhere leaves either all of it or none of it.

The unit crosses as one JSON document (``json.dumps`` and the server's ``cjson`` are both C,
where redis-py's per-argument packing of ~100k arguments cost seconds), plus the raw bytes of
dead letters as extra arguments. Floats round-trip exactly (shortest repr both ways); integers
at or beyond 2**53 travel as strings, so increments stay exact at any size.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aredis
from redis.commands.core import AsyncScript

from llmtap.consumers.alerts.state import ALERT_STEP_LUA

# Key names travel inside ARGV: the script touches keys it only learns from its arguments, which
# only a standalone server (or one cluster slot) can serve. See docs/key-layout.md.
COMMIT_LUA: Final = (
    ALERT_STEP_LUA
    + r"""
local u = cjson.decode(ARGV[1])
local function call_chunked(cmd, head, items)
  local n = #items
  local i = 1
  while i <= n do
    local j = math.min(i + 3999, n)
    local args = {}
    for _, h in ipairs(head) do args[#args + 1] = h end
    for k = i, j do args[#args + 1] = items[k] end
    redis.call(cmd, unpack(args))
    i = j + 1
  end
end

-- entry ids: each must be pending and owned by this consumer
local lost = {}
for _, id in ipairs(u.ids) do
  local pend = redis.call('XPENDING', u.stream, u.group, id, id, 1, u.consumer)
  if #pend == 0 then lost[#lost + 1] = id end
end

-- rollups: each mark must not have been counted before
local dups = {}
for key, marks in pairs(u.dedup) do
  for _, m in ipairs(marks) do
    if redis.call('SISMEMBER', key, m) == 1 then
      dups[#dups + 1] = key
      dups[#dups + 1] = m
    end
  end
end
if #lost > 0 or #dups > 0 then return {0, lost, dups} end

for key, marks in pairs(u.dedup) do
  call_chunked('SADD', {key}, marks)
  redis.call('EXPIRE', key, u.dedup_ttl)
end
for key, fields in pairs(u.ints) do
  for f, v in pairs(fields) do redis.call('HINCRBY', key, f, v) end
end
-- floats, minima, maxima: one HMGET and one HSET per key and 1000 fields (Lua doubles are
-- exact for these sums of weights and seconds; a number written back round-trips)
local function merge(table_, combine)
  for key, fields in pairs(table_) do
    local names, values = {}, {}
    for f, v in pairs(fields) do
      names[#names + 1] = f
      values[#values + 1] = v
    end
    for i = 1, #names, 1000 do
      local j = math.min(i + 999, #names)
      local cur = redis.call('HMGET', key, unpack(names, i, j))
      local kv = {}
      for k = i, j do
        local new = combine(tonumber(cur[k - i + 1]), values[k])
        if new then
          kv[#kv + 1] = names[k]
          kv[#kv + 1] = new
        end
      end
      if #kv > 0 then redis.call('HSET', key, unpack(kv)) end
    end
  end
end
merge(u.floats, function(cur, v) return (cur or 0) + v end)
merge(u.mins, function(cur, v) if not cur or v < cur then return v end end)
merge(u.maxs, function(cur, v) if not cur or v > cur then return v end end)
for key, members in pairs(u.members) do call_chunked('SADD', {key}, members) end

-- top-N sorted sets: add, then keep the N highest scores
for key, top in pairs(u.top) do
  local flat = {}
  for member, score in pairs(top[2]) do
    flat[#flat + 1] = score
    flat[#flat + 1] = member
  end
  call_chunked('ZADD', {key}, flat)
  redis.call('ZREMRANGEBYRANK', key, 0, -(top[1] + 1))
end

-- latest values: replace a hash's fields when this sequence number is newer
for key, latest in pairs(u.latest) do
  local cur = redis.call('HGET', key, 'seq')
  if not cur or latest[1] > tonumber(cur) then
    local flat = {'seq', latest[1]}
    for f, v in pairs(latest[2]) do
      flat[#flat + 1] = f
      flat[#flat + 1] = v
    end
    call_chunked('HSET', {key}, flat)
  end
end

for key, ttl in pairs(u.ttl) do redis.call('EXPIRE', key, ttl) end

-- dead letters: their fields in the JSON, their raw bytes in ARGV[2], ARGV[3], ...
for i, rec in ipairs(u.dlq) do
  rec[#rec + 1] = 'raw'
  rec[#rec + 1] = ARGV[i + 1]
  redis.call('XADD', u.dlq_stream, 'MAXLEN', '~', u.dlq_maxlen, '*', unpack(rec))
end

for f, v in pairs(u.counters) do redis.call('HINCRBY', u.stats, f, v) end

-- alert steps (per-call alerts): state moves and notifications enqueue with the XACK
for _, o in ipairs(u.alerts) do alert_step(o) end

call_chunked('XACK', {u.stream, u.group}, u.ids)
return {1, {}, {}}
"""
)

_EXACT_LIMIT: Final = 2**53


@dataclass
class Writes:
    """The merged effect of a unit on the aggregates, produced by a worker's processor.

    ``ints``/``floats``: key -> field -> increment. ``mins``/``maxs``: key -> field -> value,
    kept if lower/higher than the stored one. ``members``: key -> set members to add.
    ``top``: key -> (N, member -> score), trimmed to the N highest. ``latest``: key -> (seq,
    field -> value), written only when ``seq`` is newer. ``ttl``: key -> seconds.
    ``alerts``: alert steps (see :mod:`.alert_state`), applied in order.
    """

    ints: defaultdict[str, defaultdict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    floats: defaultdict[str, defaultdict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    mins: defaultdict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    maxs: defaultdict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    members: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    top: dict[str, tuple[int, dict[str, float]]] = field(default_factory=dict)
    latest: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)
    ttl: dict[str, int] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def set_min(self, key: str, name: str, value: float) -> None:
        """Keep ``value`` in ``mins`` if it is the lowest seen for (key, name)."""
        fields = self.mins[key]
        if name not in fields or value < fields[name]:
            fields[name] = value

    def set_max(self, key: str, name: str, value: float) -> None:
        """Keep ``value`` in ``maxs`` if it is the highest seen for (key, name)."""
        fields = self.maxs[key]
        if name not in fields or value > fields[name]:
            fields[name] = value


@dataclass(frozen=True)
class DeadLetter:
    """One dead-letter record: why, which entry (and event index in a ``b`` array), the bytes."""

    reason: str
    entry_id: bytes
    raw: bytes
    index: int | None = None


@dataclass
class Commit:
    """Everything one EVALSHA carries: ids, rollup marks, writes, dead letters and counters."""

    stream: str
    group: str
    consumer: str
    ids: Sequence[bytes]
    dedup: dict[str, set[str]]
    dedup_ttl_s: int
    writes: Writes
    dead_letters: Sequence[DeadLetter]
    dlq: str
    dlq_maxlen: int
    stats_key: str
    counters: dict[str, int]

    def args(self) -> list[str | bytes]:
        """Return the script's ARGV: the JSON document, then the raw bytes of each dead letter."""
        w = self.writes
        document = {
            "stream": self.stream,
            "group": self.group,
            "consumer": self.consumer,
            "ids": [entry_id.decode() for entry_id in self.ids],
            "dedup": {key: sorted(marks) for key, marks in self.dedup.items()},
            "dedup_ttl": self.dedup_ttl_s,
            "ints": _exact_ints(w.ints),
            "floats": w.floats,
            "mins": w.mins,
            "maxs": w.maxs,
            "members": {key: sorted(members) for key, members in w.members.items()},
            "top": w.top,
            "latest": w.latest,
            "ttl": w.ttl,
            "alerts": w.alerts,
            "dlq": [self._letter_fields(letter) for letter in self.dead_letters],
            "dlq_stream": self.dlq,
            "dlq_maxlen": self.dlq_maxlen,
            "stats": self.stats_key,
            "counters": self.counters,
        }
        return [_dumps(document), *(letter.raw for letter in self.dead_letters)]

    def _letter_fields(self, letter: DeadLetter) -> list[str]:
        fields = ["reason", letter.reason, "stream", self.stream, "id", letter.entry_id.decode()]
        fields += ["group", self.group, "consumer", self.consumer]
        if letter.index is not None:
            fields += ["index", str(letter.index)]
        return fields


def _exact_ints(table: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int | str]]:
    """Pass integers at or beyond 2**53 as strings: Lua numbers are doubles."""
    out: dict[str, dict[str, int | str]] = {}
    for key, fields in table.items():
        if any(abs(v) >= _EXACT_LIMIT for v in fields.values()):
            out[key] = {f: (str(v) if abs(v) >= _EXACT_LIMIT else v) for f, v in fields.items()}
        else:
            out[key] = dict(fields)
    return out


def _dumps(document: object) -> str:
    return json.dumps(document, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Outcome:
    """The script's answer: applied, or the ids and rollup marks that stopped it."""

    applied: bool
    lost_ids: frozenset[bytes]
    duplicate_marks: frozenset[tuple[str, str]]


class Committer:
    """Runs COMMIT_LUA with EVALSHA (reloading it after a server restart or SCRIPT FLUSH)."""

    def __init__(self, client: aredis.Redis) -> None:
        self._script: AsyncScript = client.register_script(COMMIT_LUA)

    async def commit(self, commit: Commit) -> Outcome:
        """Apply ``commit`` atomically; return what happened. Raises redis errors as they come."""
        reply = await self._script(keys=[], args=commit.args())
        applied, lost, dups = reply
        if applied == 1:
            return Outcome(True, frozenset(), frozenset())
        marks = {(_text(dups[i]), _text(dups[i + 1])) for i in range(0, len(dups), 2)}
        return Outcome(False, frozenset(bytes(x) for x in lost), frozenset(marks))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
