"""The consumer-group runtime every worker shares: read, fold, commit exactly once, reclaim.

A :class:`Consumer` owns one consumer in one group. It creates the group at id ``0`` with
MKSTREAM (so a backlog is processed), folds batches of entries into a :class:`Unit` in memory,
and commits the unit every ``flush_interval_s`` or ``flush_events`` with one Lua script that
checks ownership, de-duplicates rollups, applies the writes and XACKs (see :mod:`.commit`).
Bad entries and events become dead letters in the same commit. While one unit commits, the
next one folds (the server runs the script while this process decodes). A unit's control-side
effects (alert steps, outbox messages) are committed to its shard's control outbox and relayed
to control state once (:mod:`.relay`). Abandoned entries come back through :mod:`.reclaim`.
The engines that drive a consumer are :mod:`.engine` (a plain redis-py loop) and
:mod:`.faststream_app`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aredis
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from llmtap import events, keys
from llmtap.consumers.runtime.commit import Commit, Committer, DeadLetter, ScriptPart, Writes
from llmtap.consumers.runtime.config import RuntimeConfig
from llmtap.consumers.runtime.relay import Relay
from llmtap.notify import Heartbeat, encode_heartbeat

log = logging.getLogger(__name__)

Entry = tuple[bytes, Mapping[bytes, bytes]]
# A unit is retried at most this often after conflicts; each retry drops what was lost.
MAX_COMMIT_ATTEMPTS = 20
# Raise the layout's shard count to ARGV[1] (never lower it: data on higher shards stays
# readable after LLMTAP_SHARDS is reduced) and record the layout version ARGV[2]. The first
# layout-4 worker also records since when every granularity is written (ARGV[5]): 0 on a fresh
# record, the server's clock when an older layout wrote the record before.
RECORD_LAYOUT_LUA = """#!lua
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[3]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('HSET', KEYS[1], ARGV[3], ARGV[1]) end
if redis.call('HEXISTS', KEYS[1], ARGV[5]) == 0 then
  local before = tonumber(redis.call('HGET', KEYS[1], ARGV[4]) or '0')
  local since = '0'
  if before > 0 and before < 4 then since = redis.call('TIME')[1] end
  redis.call('HSET', KEYS[1], ARGV[5], since)
end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[2])
return 1
"""


class Processor(Protocol):
    """What a worker kind implements: fold events in memory, then say what to write.

    A processor whose writes hold steps (``Writes.alerts``) also declares the Lua that applies
    them, as an optional attribute ``script_parts: tuple[ScriptPart, ...]``.
    """

    group: str
    wants_calls: bool
    wants_rollups: bool

    def add_call(self, event: events.CallEvent) -> None:
        """Fold one call event into the in-memory aggregate."""

    def add_rollup(self, event: events.RollupEvent) -> None:
        """Fold one (not yet counted) rollup into the in-memory aggregate."""

    def writes(self) -> Writes:
        """Return the merged writes of everything folded since the last ``clear``."""

    def clear(self) -> None:
        """Forget everything folded."""


ProcessorFactory = Callable[[], Processor]


def consumer_name() -> str:
    """Return a consumer name unique to this process: ``host-pid-random``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class Unit:
    """Entries folded since the last commit, kept so the unit can be rebuilt on a conflict."""

    processor: Processor
    entries: dict[bytes, Mapping[bytes, bytes]] = field(default_factory=dict)
    dead_entries: dict[bytes, DeadLetter] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    marks: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    excluded: set[tuple[str, str]] = field(default_factory=set)
    processed: int = 0
    duplicates: int = 0
    conflicts: int = 0
    started: float = field(default_factory=time.monotonic)

    def __bool__(self) -> bool:
        return bool(self.entries or self.dead_entries)

    def __contains__(self, entry_id: bytes) -> bool:
        return entry_id in self.entries or entry_id in self.dead_entries

    @property
    def ids(self) -> list[bytes]:
        """Every entry id this unit acknowledges."""
        return [*self.entries, *self.dead_entries]

    def forget_folds(self) -> None:
        """Drop what folding produced (not the entries), before folding them again."""
        self.dead_letters.clear()
        self.marks.clear()
        self.processed = 0
        self.duplicates = 0
        self.processor.clear()

    def counters(self) -> dict[str, int]:
        """Return the group counters this unit adds when it commits."""
        counters = {
            "processed": self.processed,
            "entries": len(self.entries) + len(self.dead_entries),
            "dlq": len(self.dead_letters) + len(self.dead_entries),
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "commits": 1,
        }
        return {name: value for name, value in counters.items() if value}


@dataclass
class Totals:
    """What this consumer committed since it started (for logs, burst results and the bench)."""

    processed: int = 0
    entries: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    conflicts: int = 0
    commits: int = 0
    reclaimed: int = 0

    def add(self, unit: Unit) -> None:
        """Count a committed unit."""
        self.processed += unit.processed
        self.entries += len(unit.entries) + len(unit.dead_entries)
        self.dead_letters += len(unit.dead_letters) + len(unit.dead_entries)
        self.duplicates += unit.duplicates
        self.conflicts += unit.conflicts
        self.commits += 1


class Consumer:
    """One consumer of one group on the events stream. ``setup()`` before anything else."""

    def __init__(
        self,
        client: aredis.Redis,
        processors: ProcessorFactory,
        config: RuntimeConfig,
        *,
        stream: str | None = None,
        name: str | None = None,
        script_parts: Sequence[ScriptPart] | None = None,
        shard: int = 0,
    ) -> None:
        self.client = client
        self.config = config
        # Every key this consumer writes is its shard's (see keys.on_shard): one cluster slot.
        self.shard = shard
        self.stream = stream or keys.events_stream(shard)
        self.name = name or consumer_name()
        self.totals = Totals()
        self._processors = processors
        self.unit = Unit(processors())
        self.group = self.unit.processor.group
        parts = declared_parts(self.unit.processor) if script_parts is None else script_parts
        self._committer = Committer(client, parts)
        self._relay = Relay(client, parts, self.group, shard)
        self._in_flight: tuple[Unit, asyncio.Task[int]] | None = None
        self._hour_names: dict[int, str] = {}
        self.last_absorb = 0.0

    async def setup(self) -> bool:
        """Record this shard in the layout (readers merge every shard up to the highest one
        recorded), then create the group at id 0 with MKSTREAM unless it exists; return True if
        this call created it. Re-raises any error but "group already exists"."""
        await self.record_layout()
        created = await create_group(self.client, self.stream, self.group)
        if created:
            log.info("created group %s on %s at id 0", self.group, self.stream)
        return created

    async def recover_group(self) -> None:
        """Recreate the group after it vanished (its stream or the group was deleted under
        this consumer): at id 0 with MKSTREAM, logged and counted as ``recreated`` in the
        group's stats hash (once per recreation, whichever replica wins)."""
        await recreate_group(self.client, self.stream, self.group, self.shard)

    async def read(self, block_ms: int | None) -> list[Entry]:
        """XREADGROUP up to ``read_count`` new entries, blocking up to ``block_ms`` (None: no)."""
        reply: Any = await self.client.xreadgroup(
            self.group, self.name, {self.stream: ">"}, count=self.config.read_count, block=block_ms
        )
        if not reply:
            return []
        return [(entry_id, fields) for entry_id, fields in reply[0][1] if fields is not None]

    def absorb(self, entries: Sequence[Entry]) -> None:
        """Fold entries into the unit in hand (entries already held are skipped)."""
        unit = self.unit
        self.last_absorb = time.monotonic()
        if not unit:
            unit.started = self.last_absorb
        for entry_id, fields in entries:
            if not self.holds(entry_id):
                unit.entries[entry_id] = fields
                self._fold(unit, entry_id, fields)

    def absorb_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Add entries that go straight to the dead-letter stream (acknowledged at commit)."""
        for letter in letters:
            if not self.holds(letter.entry_id):
                self.unit.dead_entries[letter.entry_id] = letter

    def unheld(self, entries: Sequence[tuple[bytes, Mapping[bytes, bytes] | None]]) -> list[Entry]:
        """Return the entries that still exist (fields not None) and that this consumer
        does not already hold."""
        return [(i, f) for i, f in entries if f is not None and not self.holds(i)]

    def adopt(self, entries: Sequence[Entry], dead: Sequence[DeadLetter]) -> None:
        """Take entries claimed from another consumer into the unit in hand (``dead``: to the
        dead-letter stream) and count them all as reclaimed."""
        self.absorb(entries)
        self.absorb_dead(dead)
        self.totals.reclaimed += len(entries) + len(dead)

    def holds(self, entry_id: bytes) -> bool:
        """True if the unit in hand or the one committing covers this entry."""
        in_flight = self._in_flight
        return entry_id in self.unit or (in_flight is not None and entry_id in in_flight[0])

    @property
    def held(self) -> int:
        """How many entries the unit in hand and the one committing cover together."""
        in_flight = self._in_flight
        extra = (
            0 if in_flight is None else len(in_flight[0].entries) + len(in_flight[0].dead_entries)
        )
        return len(self.unit.entries) + len(self.unit.dead_entries) + extra

    @property
    def due(self) -> bool:
        """True when the unit in hand should be committed (size or age reached)."""
        unit = self.unit
        if not unit:
            return False
        if unit.processed >= self.config.flush_events:
            return True
        return time.monotonic() - unit.started >= self.config.flush_interval_s

    @property
    def idle(self) -> bool:
        """True when nothing is in hand and nothing is committing."""
        return not self.unit and self._in_flight is None

    async def flush(self) -> int:
        """Commit everything in hand and wait for it; return the events applied.

        Entries a reclaimer took meanwhile, and rollups counted elsewhere meanwhile, are dropped
        and the unit is rebuilt and committed again. A Redis error propagates with the unit
        kept in hand: committing it again is safe (acknowledged ids fail the ownership check).
        """
        applied = await self.settle()
        unit = self._take_unit()
        try:
            return applied + await self._commit_unit(unit)
        except BaseException:
            self._restore(unit)
            raise

    async def flush_soon(self) -> None:
        """Start committing the unit in hand in the background (after the previous commit)."""
        await self.settle()
        if self.unit:
            unit = self._take_unit()
            self._in_flight = (unit, asyncio.create_task(self._commit_unit(unit)))

    async def settle(self) -> int:
        """Wait for the background commit, if any; return its events applied.

        If it failed, its unit is folded back into the unit in hand and the error re-raised.
        """
        if self._in_flight is None:
            return 0
        unit, task = self._in_flight
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._in_flight = None
                if task.cancelled() or task.exception() is not None:
                    self._restore(unit)

    async def record_layout(self) -> None:
        """Make sure ``keys.LAYOUT`` counts this consumer's shard (a reset deletes it)."""
        await self.client.eval(
            RECORD_LAYOUT_LUA,
            1,
            keys.LAYOUT,
            self.shard + 1,
            keys.LAYOUT_VERSION,
            keys.LAYOUT_SHARDS_FIELD,
            keys.LAYOUT_VERSION_FIELD,
            keys.LAYOUT_TIERS_FIELD,
        )

    async def heartbeat(self) -> None:
        """Refresh this consumer's heartbeat key (it expires after ``heartbeat_ttl_s``) and
        the layout record (readers find the shards again soon after a reset)."""
        await self.record_layout()
        beat = Heartbeat(ts=round(time.time(), 3), pid=os.getpid(), processed=self.totals.processed)
        key = keys.heartbeat(self.group, self.name)
        await self.client.set(key, encode_heartbeat(beat), ex=self.config.heartbeat_ttl_s)

    async def drained(self) -> bool:
        """True when nothing is in hand, nothing is pending and every entry was delivered."""
        if self._in_flight is not None and self._in_flight[1].done():
            await self.settle()
        if not self.idle:
            return False
        try:
            groups = await self.client.xinfo_groups(self.stream)
        except ResponseError as exc:
            if not group_missing(exc):
                raise
            return False  # the stream is gone: the next read recreates the group
        info = next((g for g in groups if _text(g["name"]) == self.group), None)
        if info is None or info["pending"]:
            return False
        stream = await self.client.xinfo_stream(self.stream)
        return bool(info["last-delivered-id"] == stream["last-generated-id"])

    async def relay(self) -> int:
        """Apply the control records this group's commits left on this shard (any consumer's:
        one that died after its commit leaves them for the others); return how many this
        call applied. Raises redis errors (the records stay for the next call)."""
        return await self._relay.run()

    async def close(self) -> None:
        """Commit what is in hand, relay its control records, drop the heartbeat and, if
        nothing is pending, the consumer."""
        await self.flush()
        await self.relay()
        await self.client.delete(keys.heartbeat(self.group, self.name))
        try:
            mine = await self.client.xpending_range(
                self.stream, self.group, "-", "+", 1, consumername=self.name
            )
            if not mine:
                await self.client.xgroup_delconsumer(self.stream, self.group, self.name)
        except ResponseError as exc:
            if not group_missing(exc):
                raise  # a group deleted meanwhile holds no consumer to remove

    def _take_unit(self) -> Unit:
        unit, self.unit = self.unit, Unit(self._processors())
        if len(self._hour_names) > 1000:
            self._hour_names.clear()
        return unit

    def _restore(self, unit: Unit) -> None:
        """Fold a unit whose commit failed back into the unit in hand."""
        self.absorb(list(unit.entries.items()))
        self.absorb_dead(list(unit.dead_entries.values()))

    async def _commit_unit(self, unit: Unit) -> int:
        for _ in range(MAX_COMMIT_ATTEMPTS):
            if not unit:
                return 0
            commit = self._commit(unit)
            outcome = await self._committer.commit(commit)
            if outcome.applied:
                self.totals.add(unit)
                if commit.writes.alerts or commit.writes.notify:
                    await self._relay_committed()
                return unit.processed
            self._rebuild(unit, outcome.lost_ids, outcome.duplicate_marks)
        raise RuntimeError(f"unit still conflicting after {MAX_COMMIT_ATTEMPTS} attempts")

    async def _relay_committed(self) -> None:
        """Relay the record just committed; a failure leaves it to the periodic relay (the
        unit is committed: retrying its commit would find its entries acknowledged)."""
        try:
            await self._relay.run()
        except (RedisError, RedisClusterException, OSError) as exc:
            log.warning("control records of %s wait for the next relay (%s)", self.group, exc)

    def _fold(self, unit: Unit, entry_id: bytes, fields: Mapping[bytes, bytes]) -> None:
        # The hot path: one type check per event; errors are rare and handled apart.
        items = events.decode_entry(fields)
        processor = unit.processor
        add_call = processor.add_call if processor.wants_calls else None
        add_rollup = self._fold_rollup if processor.wants_rollups else None
        call_type, rollup_type = events.CallEvent, events.RollupEvent
        valid = len(items)
        for item in items:
            kind = type(item)
            if kind is call_type:
                if add_call is not None:
                    add_call(item)  # type: ignore[arg-type]
            elif kind is rollup_type:
                if add_rollup is not None:
                    add_rollup(unit, item)  # type: ignore[arg-type]
            else:
                valid -= 1
        unit.processed += valid
        if valid < len(items):
            self._dead_letters(unit, entry_id, keys.FIELD_EVENT not in fields, items)

    def _dead_letters(
        self,
        unit: Unit,
        entry_id: bytes,
        batch: bool,
        items: Sequence[events.Event | events.EventError],
    ) -> None:
        for index, item in enumerate(items):
            if isinstance(item, events.EventError):
                where = index if batch and item.raw else None
                unit.dead_letters.append(DeadLetter(item.reason, entry_id, item.raw, where))

    def _fold_rollup(self, unit: Unit, rollup: events.RollupEvent) -> None:
        hour = keys.bucket_start("h", rollup.window_start)
        name = self._hour_names.get(hour)
        if name is None:
            name = self._hour_names[hour] = keys.bucket("h", hour)
        mark_key = keys.on_shard(keys.dedup(self.group, name), self.shard)
        mark = f"{rollup.seq}:{rollup.producer_id}"
        marks = unit.marks[mark_key]
        if mark in marks or (mark_key, mark) in unit.excluded:
            unit.duplicates += 1
            return
        marks.add(mark)
        unit.processor.add_rollup(rollup)

    def _commit(self, unit: Unit) -> Commit:
        return Commit(
            stream=self.stream,
            group=self.group,
            consumer=self.name,
            ids=unit.ids,
            dedup=dict(unit.marks),
            dedup_ttl_s=self.config.dedup_ttl_s,
            writes=unit.processor.writes().on_shard(self.shard),
            dead_letters=[*unit.dead_letters, *unit.dead_entries.values()],
            dlq=keys.dlq_stream(self.shard),
            dlq_maxlen=self.config.dlq_maxlen,
            stats_key=keys.on_shard(keys.stats(self.group), self.shard),
            counters=unit.counters(),
            notify_stream=keys.NOTIFY,
            notify_maxlen=keys.NOTIFY_MAXLEN,
            control_outbox=self._relay.outbox,
        )

    def _rebuild(
        self, unit: Unit, lost: frozenset[bytes], duplicates: frozenset[tuple[str, str]]
    ) -> None:
        if lost:
            log.info("%d entries were taken over by another consumer; dropped", len(lost))
        if duplicates:
            log.info("%d rollups were already counted; dropped", len(duplicates))
        for entry_id in lost:
            unit.entries.pop(entry_id, None)
            unit.dead_entries.pop(entry_id, None)
        unit.excluded |= duplicates
        unit.conflicts += 1
        unit.forget_folds()
        for entry_id, fields in unit.entries.items():
            self._fold(unit, entry_id, fields)


def group_missing(exc: ResponseError) -> bool:
    """True when a command failed because the group or its stream does not exist (someone
    deleted the stream, or destroyed the group, under a running consumer)."""
    text = str(exc)
    return text.startswith("NOGROUP") or "no such key" in text


async def create_group(client: aredis.Redis, stream: str, group: str) -> bool:
    """Create ``group`` on ``stream`` at id 0 with MKSTREAM; return False if it existed.

    Re-raises every error but BUSYGROUP.
    """
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        return False
    return True


async def recreate_group(client: aredis.Redis, stream: str, group: str, shard: int = 0) -> None:
    """Recreate a group that vanished under a running consumer; log and count it
    (``recreated`` in the shard's ``keys.stats(group)``) when this call created it."""
    if await create_group(client, stream, group):
        await client.hincrby(keys.on_shard(keys.stats(group), shard), "recreated", 1)
        log.warning(
            "group %s on %s was missing (stream or group deleted); recreated at id 0",
            group,
            stream,
        )


def declared_parts(processor: Processor) -> tuple[ScriptPart, ...]:
    """Return the script parts ``processor`` declares (``script_parts``), or none."""
    return tuple(getattr(processor, "script_parts", None) or ())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
