"""Taking back entries abandoned by dead consumers, and removing the dead consumers.

Entries pending longer than ``claim_idle_s`` are claimed in batches with XAUTOCLAIM (which
transfers ownership: the old owner's commit will then skip them). A claimed entry delivered more
than ``max_deliveries`` times is a poison pill and becomes a dead letter; the others are folded
like fresh entries. Entries trimmed from the stream while pending are counted as ``trimmed``.
Consumers idle longer than ``claim_idle_s`` with nothing pending are deleted atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from llmtap import keys
from llmtap.consumers.runtime.commit import DeadLetter
from llmtap.consumers.runtime.consumer import Consumer, Entry

log = logging.getLogger(__name__)

# At most this many XAUTOCLAIM batches per pass, so new entries are not starved.
MAX_BATCHES_PER_PASS: Final = 10

# Delete a consumer only if it still has nothing pending when the deletion runs.
DELETE_IF_IDLE_LUA: Final = """
local pend = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pend > 0 then return 0 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) + 1
"""


async def reclaim(consumer: Consumer) -> int:
    """Claim abandoned entries into ``consumer``'s unit; return how many were claimed."""
    cursor: bytes | str = "0-0"
    claimed = 0
    for _ in range(MAX_BATCHES_PER_PASS):
        cursor, entries, deleted = await consumer.client.xautoclaim(
            consumer.stream,
            consumer.group,
            consumer.name,
            int(consumer.config.claim_idle_s * 1000),
            start_id=cursor,
            count=consumer.config.read_count,
        )
        await _count(consumer, "trimmed", len(deleted))
        fresh = consumer.unheld(entries)
        if fresh:
            await _fold_claimed(consumer, fresh)
            claimed += len(fresh)
        if cursor in (b"0-0", "0-0"):
            break
    if claimed:
        await _count(consumer, "reclaimed", claimed)
        log.info("reclaimed %d abandoned entries into %s", claimed, consumer.name)
    return claimed


async def remove_dead_consumers(consumer: Consumer) -> int:
    """Delete consumers idle longer than ``claim_idle_s`` with nothing pending; return the count."""
    idle_ms = consumer.config.claim_idle_s * 1000
    infos = await consumer.client.xinfo_consumers(consumer.stream, consumer.group)
    removed = 0
    for info in infos:
        name = _text(info["name"])
        if name == consumer.name or info["pending"] or info["idle"] < idle_ms:
            continue
        deleted = await consumer.client.eval(
            DELETE_IF_IDLE_LUA, 1, consumer.stream, consumer.group, name
        )
        if deleted:
            removed += 1
            log.info("removed dead consumer %s from group %s", name, consumer.group)
    return removed


async def _fold_claimed(consumer: Consumer, entries: list[Entry]) -> None:
    counts = await _delivery_counts(consumer, [entry_id for entry_id, _ in entries])
    limit = consumer.config.max_deliveries
    good: list[Entry] = []
    dead: list[DeadLetter] = []
    for entry_id, fields in entries:
        times = counts.get(entry_id, 0)
        if times > limit:
            reason = f"delivered {times} times (more than {limit}); never acknowledged"
            dead.append(DeadLetter(reason, entry_id, _raw(fields)))
        else:
            good.append((entry_id, fields))
    if dead:
        log.warning("%d entries delivered more than %d times go to the DLQ", len(dead), limit)
    consumer.adopt(good, dead)


async def _delivery_counts(consumer: Consumer, ids: list[bytes]) -> dict[bytes, int]:
    wanted = set(ids)
    rows = await consumer.client.xpending_range(
        consumer.stream,
        consumer.group,
        min(ids, key=_id_key),
        max(ids, key=_id_key),
        len(ids) + consumer.held,  # our own held entries may lie in the same id range
        consumername=consumer.name,
    )
    return {
        row["message_id"]: int(row["times_delivered"])
        for row in rows
        if row["message_id"] in wanted
    }


def _id_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def _raw(fields: Mapping[bytes, bytes]) -> bytes:
    return fields.get(keys.FIELD_EVENT) or fields.get(keys.FIELD_BATCH) or b""


async def _count(consumer: Consumer, name: str, value: int) -> None:
    if value:
        stats = keys.on_shard(keys.stats(consumer.group), consumer.shard)
        await consumer.client.hincrby(stats, name, value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
