"""The one place the read side fetches aggregate hashes and sets: every key a request needs, in
one pipeline (one round trip), so a view never re-reads a bucket another view already read.

With ``LLMTAP_SHARDS`` > 1 (one copy of each hash per shard and bucket) the copies are merged
here (:mod:`llmtap.read.shards`): the callers get the replies in the order of the keys they
asked for and never see a shard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis

from llmtap.aggregates import Raw
from llmtap.read import shards, wire

Hash = Mapping[Raw, Raw]


@dataclass(frozen=True)
class Replies:
    """The hashes (field -> value, empty when the key is absent) and the set members (sorted,
    so every read merges in the same order) of the keys asked for, in their order."""

    hashes: list[Hash]
    sets: list[list[Raw]]


def fetch(client: redis.Redis, hashes: Sequence[str] = (), sets: Sequence[str] = ()) -> Replies:
    """Return every hash (HGETALL) and set (SMEMBERS) named, read in one pipeline.

    Redis errors propagate.
    """
    if not hashes and not sets:
        return Replies([], [])
    count = shards.shard_count(client)
    commands = [
        ("HGETALL", moved) for name in hashes for moved in shards.names_on_shards(name, count)
    ]
    commands += [
        ("SMEMBERS", moved) for name in sets for moved in shards.names_on_shards(name, count)
    ]
    replies = wire.execute(client, commands)
    split = len(hashes) * count
    found: list[Hash] = [wire.as_hash(reply) for reply in replies[:split]]
    if count == 1:
        return Replies(found, [sorted(reply) for reply in replies[split:]])
    copies = [found[i : i + count] for i in range(0, split, count)]
    united = [set().union(*replies[i : i + count]) for i in range(split, len(replies), count)]
    return Replies([shards.merge_hashes(c) for c in copies], [sorted(u) for u in united])
