"""The consumer-group runtime every worker shares: read, fold, commit exactly once, reclaim.

A :class:`Consumer` owns one consumer in one group. It creates the group at id ``0`` with
MKSTREAM (so a backlog is processed), folds batches of entries into a unit in memory, and
commits the unit every ``flush_interval_s`` or ``flush_events`` with one Lua script that checks
ownership, de-duplicates rollups, applies the writes and XACKs (see :mod:`.commit`). Bad
entries and events become dead letters in the same commit. Abandoned entries come back through
:mod:`.reclaim`. The engines that drive it (a plain redis-py loop, or FastStream) live in
:mod:`.engine` and :mod:`.faststream_app`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aredis
from redis.exceptions import ResponseError

from llmtap import events, keys
from llmtap.consumers.commit import Commit, Committer, DeadLetter, Writes
from llmtap.consumers.config import RuntimeConfig

log = logging.getLogger(__name__)

Entry = tuple[bytes, Mapping[bytes, bytes]]
# A unit is retried at most this often after conflicts; each retry drops what was lost.
MAX_COMMIT_ATTEMPTS = 20


class Processor(Protocol):
    """What a worker kind implements: fold events in memory, then say what to write."""

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


def consumer_name() -> str:
    """Return a consumer name unique to this process: ``host-pid-random``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class Unit:
    """The entries folded since the last commit, kept so the unit can be rebuilt on conflict."""

    entries: dict[bytes, Mapping[bytes, bytes]] = field(default_factory=dict)
    dead_entries: dict[bytes, DeadLetter] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    marks: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    excluded: set[tuple[str, str]] = field(default_factory=set)
    processed: int = 0
    duplicates: int = 0
    conflicts: int = 0
    started: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.entries or self.dead_entries)

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
    """What this consumer did since it started (for logs, burst results and the bench)."""

    processed: int = 0
    entries: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    conflicts: int = 0
    commits: int = 0
    reclaimed: int = 0


class Consumer:
    """One consumer of one group on the events stream. ``setup()`` before anything else."""

    def __init__(
        self,
        client: aredis.Redis,
        processor: Processor,
        config: RuntimeConfig,
        *,
        stream: str = keys.EVENTS,
        name: str | None = None,
    ) -> None:
        self.client = client
        self.processor = processor
        self.config = config
        self.stream = stream
        self.group = processor.group
        self.name = name or consumer_name()
        self.totals = Totals()
        self.unit = Unit(started=time.monotonic())
        self._committer = Committer(client)
        self._hour_names: dict[int, str] = {}

    async def setup(self) -> None:
        """Create the group at id 0 with MKSTREAM unless it exists; re-raise any other error."""
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            log.info("created group %s on %s at id 0", self.group, self.stream)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, block_ms: int | None) -> list[Entry]:
        """XREADGROUP up to ``read_count`` new entries, blocking up to ``block_ms`` (None: no)."""
        reply = await self.client.xreadgroup(
            self.group,
            self.name,
            {self.stream: ">"},
            count=self.config.read_count,
            block=block_ms,
        )
        if not reply:
            return []
        return [(entry_id, fields) for entry_id, fields in reply[0][1] if fields is not None]

    def absorb(self, entries: Sequence[Entry]) -> None:
        """Fold entries into the unit (entries already in it are skipped)."""
        unit = self.unit
        if not unit:
            unit.started = time.monotonic()
        for entry_id, fields in entries:
            if entry_id in unit.entries or entry_id in unit.dead_entries:
                continue
            unit.entries[entry_id] = fields
            self._fold(entry_id, fields)

    def absorb_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Add entries that go straight to the dead-letter stream (acknowledged at commit)."""
        for letter in letters:
            self.unit.entries.pop(letter.entry_id, None)
            self.unit.dead_entries[letter.entry_id] = letter

    @property
    def due(self) -> bool:
        """True when the unit should be committed now (size or age reached)."""
        unit = self.unit
        if not unit:
            return False
        if unit.processed >= self.config.flush_events:
            return True
        return time.monotonic() - unit.started >= self.config.flush_interval_s

    def holds(self, entry_id: bytes) -> bool:
        """True if the unit in hand already covers this entry."""
        return entry_id in self.unit.entries or entry_id in self.unit.dead_entries

    async def flush(self) -> int:
        """Commit the unit in hand exactly once; return the number of events it applied.

        Entries a reclaimer took meanwhile, and rollups counted elsewhere meanwhile, are dropped
        from the unit, which is rebuilt and committed again. Redis errors propagate and leave
        the unit in hand (a later flush retries it safely: acknowledged ids fail the check).
        """
        for _ in range(MAX_COMMIT_ATTEMPTS):
            if not self.unit:
                return 0
            outcome = await self._committer.commit(self._commit())
            if outcome.applied:
                return self._committed()
            self._rebuild(outcome.lost_ids, outcome.duplicate_marks)
        raise RuntimeError(f"unit still conflicting after {MAX_COMMIT_ATTEMPTS} attempts")

    async def heartbeat(self) -> None:
        """Refresh this consumer's heartbeat key (it expires after ``heartbeat_ttl_s``)."""
        value = f'{{"ts": {time.time():.3f}, "pid": {os.getpid()}, "processed": '
        value += f"{self.totals.processed}}}"
        await self.client.set(
            keys.heartbeat(self.group, self.name), value, ex=self.config.heartbeat_ttl_s
        )

    async def drained(self) -> bool:
        """True when nothing is in hand, nothing is pending and every entry was delivered."""
        if self.unit:
            return False
        groups = await self.client.xinfo_groups(self.stream)
        info = next(g for g in groups if _text(g["name"]) == self.group)
        if info["pending"]:
            return False
        stream = await self.client.xinfo_stream(self.stream)
        return bool(info["last-delivered-id"] == stream["last-generated-id"])

    async def close(self) -> None:
        """Commit what is in hand, drop the heartbeat and, if nothing is pending, the consumer."""
        await self.flush()
        await self.client.delete(keys.heartbeat(self.group, self.name))
        mine = await self.client.xpending_range(
            self.stream, self.group, "-", "+", 1, consumername=self.name
        )
        if not mine:
            await self.client.xgroup_delconsumer(self.stream, self.group, self.name)

    def _fold(self, entry_id: bytes, fields: Mapping[bytes, bytes]) -> None:
        unit = self.unit
        batch = keys.FIELD_EVENT not in fields
        processor = self.processor
        call_type = events.CallEvent
        for index, item in enumerate(events.decode_entry(fields)):
            if isinstance(item, events.EventError):
                where = index if batch and item.raw else None
                unit.dead_letters.append(DeadLetter(item.reason, entry_id, item.raw, where))
                continue
            unit.processed += 1
            if type(item) is call_type:
                if processor.wants_calls:
                    processor.add_call(item)
            elif processor.wants_rollups:
                self._fold_rollup(item)  # type: ignore[arg-type]

    def _fold_rollup(self, rollup: events.RollupEvent) -> None:
        hour = keys.bucket_start("h", rollup.window_start)
        name = self._hour_names.get(hour)
        if name is None:
            name = self._hour_names[hour] = keys.bucket("h", hour)
        mark_key = keys.dedup(self.group, name)
        mark = f"{rollup.seq}:{rollup.producer_id}"
        marks = self.unit.marks[mark_key]
        if mark in marks or (mark_key, mark) in self.unit.excluded:
            self.unit.duplicates += 1
            return
        marks.add(mark)
        self.processor.add_rollup(rollup)

    def _commit(self) -> Commit:
        unit = self.unit
        return Commit(
            stream=self.stream,
            group=self.group,
            consumer=self.name,
            ids=unit.ids,
            dedup=dict(unit.marks),
            dedup_ttl_s=self.config.dedup_ttl_s,
            writes=self.processor.writes(),
            dead_letters=[*unit.dead_letters, *unit.dead_entries.values()],
            dlq=keys.DLQ,
            dlq_maxlen=self.config.dlq_maxlen,
            stats_key=keys.stats(self.group),
            counters=unit.counters(),
        )

    def _committed(self) -> int:
        unit, totals = self.unit, self.totals
        totals.processed += unit.processed
        totals.entries += len(unit.entries) + len(unit.dead_entries)
        totals.dead_letters += len(unit.dead_letters) + len(unit.dead_entries)
        totals.duplicates += unit.duplicates
        totals.conflicts += unit.conflicts
        totals.commits += 1
        applied = unit.processed
        self.processor.clear()
        self.unit = Unit(started=time.monotonic())
        if len(self._hour_names) > 1000:
            self._hour_names.clear()
        return applied

    def _rebuild(self, lost: frozenset[bytes], duplicates: frozenset[tuple[str, str]]) -> None:
        unit = self.unit
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
        self.processor.clear()
        for entry_id, fields in unit.entries.items():
            self._fold(entry_id, fields)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
