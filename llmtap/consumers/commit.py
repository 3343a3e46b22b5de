"""The atomic commit: one Lua script applies a unit's writes and acknowledges its entries.

A unit is every entry a consumer merged since its last commit. The script first checks that each
entry id is still pending *and owned by this consumer* (a reclaimer may have taken it with
XAUTOCLAIM, or already acknowledged it) and that no rollup in the unit was counted before. If
anything fails a check it writes nothing and returns the offending ids and rollups, so the
caller rebuilds the unit without them and commits again. Otherwise it records the rollups as
counted, applies the increments, min/max updates, sorted-set and latest-value writes, sets the
TTLs, appends the dead letters, bumps the group's counters and XACKs every id, all in one step:
a crash anywhere leaves either all of it or none of it.

Every number crosses as a string, so integer increments stay exact beyond 2**53 and float
increments round-trip (``repr``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import redis.asyncio as aredis
from redis.commands.core import AsyncScript

# KEYS are passed through ARGV: the script touches keys it only learns from its arguments, which
# only a standalone server (or one cluster slot) can serve. See docs/key-layout.md.
COMMIT_LUA: Final = r"""
local a = ARGV
local p = 1
local function nxt() p = p + 1; return a[p - 1] end
local function num() return tonumber(nxt()) end
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

local stream, group, consumer = nxt(), nxt(), nxt()

-- entry ids: each must be pending and owned by this consumer
local ids, lost = {}, {}
for _ = 1, num() do
  local id = nxt()
  ids[#ids + 1] = id
  local pend = redis.call('XPENDING', stream, group, id, id, 1, consumer)
  if #pend == 0 then lost[#lost + 1] = id end
end

-- rollups: each (key, member) must not have been counted before
local dedup, dups = {}, {}
for _ = 1, num() do
  local key, ttl = nxt(), nxt()
  local members = {}
  for _ = 1, num() do
    local m = nxt()
    members[#members + 1] = m
    if redis.call('SISMEMBER', key, m) == 1 then
      dups[#dups + 1] = key
      dups[#dups + 1] = m
    end
  end
  dedup[#dedup + 1] = {key, ttl, members}
end
if #lost > 0 or #dups > 0 then return {0, lost, dups} end

for _, d in ipairs(dedup) do
  call_chunked('SADD', {d[1]}, d[3])
  redis.call('EXPIRE', d[1], d[2])
end

local function each_field(fn)
  for _ = 1, num() do
    local key = nxt()
    for _ = 1, num() do
      local f = nxt()
      fn(key, f, nxt())
    end
  end
end
each_field(function(k, f, v) redis.call('HINCRBY', k, f, v) end)
each_field(function(k, f, v) redis.call('HINCRBYFLOAT', k, f, v) end)
each_field(function(k, f, v)
  local cur = redis.call('HGET', k, f)
  if not cur or tonumber(v) < tonumber(cur) then redis.call('HSET', k, f, v) end
end)
each_field(function(k, f, v)
  local cur = redis.call('HGET', k, f)
  if not cur or tonumber(v) > tonumber(cur) then redis.call('HSET', k, f, v) end
end)

-- set members (indexes)
for _ = 1, num() do
  local key = nxt()
  local members = {}
  for _ = 1, num() do members[#members + 1] = nxt() end
  call_chunked('SADD', {key}, members)
end

-- top-N sorted sets: add, then keep the N highest scores
for _ = 1, num() do
  local key, keep = nxt(), num()
  local pairs_ = {}
  for _ = 1, num() do
    pairs_[#pairs_ + 1] = nxt()
    pairs_[#pairs_ + 1] = nxt()
  end
  call_chunked('ZADD', {key}, pairs_)
  redis.call('ZREMRANGEBYRANK', key, 0, -(keep + 1))
end

-- latest values: replace a hash when this sequence number is newer than the stored one
for _ = 1, num() do
  local key, seq = nxt(), nxt()
  local kv = {'seq', seq}
  for _ = 1, num() do
    kv[#kv + 1] = nxt()
    kv[#kv + 1] = nxt()
  end
  local cur = redis.call('HGET', key, 'seq')
  if not cur or tonumber(seq) > tonumber(cur) then call_chunked('HSET', {key}, kv) end
end

for _ = 1, num() do
  local key, ttl = nxt(), nxt()
  redis.call('EXPIRE', key, ttl)
end

-- dead letters
local dlq, maxlen = nxt(), nxt()
for _ = 1, num() do
  local rec = {}
  for _ = 1, num() do
    rec[#rec + 1] = nxt()
    rec[#rec + 1] = nxt()
  end
  redis.call('XADD', dlq, 'MAXLEN', '~', maxlen, '*', unpack(rec))
end

-- counters of the group
local stats = nxt()
for _ = 1, num() do
  local f = nxt()
  redis.call('HINCRBY', stats, f, nxt())
end

call_chunked('XACK', {stream, group}, ids)
return {1, {}, {}}
"""

Number = int | float | str


@dataclass
class Writes:
    """The merged effect of a unit on the aggregates, produced by a worker's processor.

    ``ints``/``floats``: key -> field -> increment. ``mins``/``maxs``: key -> field -> value,
    kept if lower/higher than the stored one. ``members``: key -> set members to add.
    ``top``: key -> (N, member -> score), trimmed to the N highest. ``latest``: key -> (seq,
    field -> value), written only when ``seq`` is newer. ``ttl``: key -> seconds.
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

    def args(self) -> list[Number | bytes]:
        """Return the script's ARGV, in the order COMMIT_LUA reads it."""
        out: list[Number | bytes] = [self.stream, self.group, self.consumer, len(self.ids)]
        out.extend(self.ids)
        out.append(len(self.dedup))
        for key, marks in self.dedup.items():
            out.extend((key, self.dedup_ttl_s, len(marks)))
            out.extend(marks)
        w = self.writes
        for table in (w.ints, w.floats, w.mins, w.maxs):
            _extend_fields(out, table)
        out.append(len(w.members))
        for key, members in w.members.items():
            out.extend((key, len(members)))
            out.extend(members)
        _extend_top(out, w.top)
        _extend_latest(out, w.latest)
        out.append(len(w.ttl))
        for key, ttl in w.ttl.items():
            out.extend((key, ttl))
        self._extend_dead_letters(out)
        out.extend((self.stats_key, len(self.counters)))
        for name, value in self.counters.items():
            out.extend((name, value))
        return out

    def _extend_dead_letters(self, out: list[Number | bytes]) -> None:
        out.extend((self.dlq, self.dlq_maxlen, len(self.dead_letters)))
        for letter in self.dead_letters:
            fields: list[tuple[str, Number | bytes]] = [
                ("reason", letter.reason),
                ("stream", self.stream),
                ("id", letter.entry_id),
                ("group", self.group),
                ("consumer", self.consumer),
                ("raw", letter.raw),
            ]
            if letter.index is not None:
                fields.append(("index", letter.index))
            out.append(len(fields))
            for pair in fields:
                out.extend(pair)


def _extend_fields(
    out: list[Number | bytes], table: Mapping[str, Mapping[str, int] | Mapping[str, float]]
) -> None:
    out.append(len(table))
    for key, fields in table.items():
        out.extend((key, len(fields)))
        for name, value in fields.items():
            out.extend((name, _number(value)))


def _extend_top(out: list[Number | bytes], top: dict[str, tuple[int, dict[str, float]]]) -> None:
    out.append(len(top))
    for key, (keep, scored) in top.items():
        out.extend((key, keep, len(scored)))
        for member, score in scored.items():
            out.extend((_number(score), member))


def _extend_latest(out: list[Number | bytes], latest: dict[str, tuple[int, dict[str, str]]]) -> None:
    out.append(len(latest))
    for key, (seq, fields) in latest.items():
        out.extend((key, seq, len(fields)))
        for pair in fields.items():
            out.extend(pair)


def _number(value: int | float) -> str:
    # repr round-trips a float exactly; str of an int is exact at any size.
    return repr(value) if isinstance(value, float) else str(value)


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
