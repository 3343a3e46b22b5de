"""The one place the read side fetches aggregate hashes, sets and packed sketches: every key a
request needs, in one pipeline (one round trip), so a view never re-reads a bucket another view
already read. Packed sketches (strings) come in one MGET per shard: all of a shard's keys share
its hash tag, so on a cluster they are in one slot, and one command costs far less than one per
key (the client's per-command work dominated a read of thousands of keys).

With ``LLMTAP_SHARDS`` > 1 (one copy of each hash per shard and bucket) the copies are merged
here (:mod:`llmtap.read.shards`): the callers get the replies in the order of the keys they
asked for and never see a shard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import redis

from llmtap import keys
from llmtap.aggregates import Raw
from llmtap.read import shards

Hash = Mapping[Raw, Raw]


@dataclass(frozen=True)
class Replies:
    """The hashes (field -> value, empty when the key is absent), the set members (sorted,
    so every read merges in the same order) and the packed sketches (None when absent) of the
    keys asked for, in their order."""

    hashes: list[Hash]
    sets: list[list[Raw]]
    strings: list[bytes | None] = field(default_factory=list)


def fetch(
    client: redis.Redis,
    hashes: Sequence[str] = (),
    sets: Sequence[str] = (),
    strings: Sequence[str] = (),
) -> Replies:
    """Return every hash (HGETALL), set (SMEMBERS) and packed sketch (MGET) named, read in one
    pipeline.

    Redis errors propagate.
    """
    if not hashes and not sets and not strings:
        return Replies([], [])
    count = shards.shard_count(client)
    pipe = client.pipeline(transaction=False)
    for name in hashes:
        for moved in shards.names_on_shards(name, count):
            pipe.hgetall(moved)
    for name in sets:
        for moved in shards.names_on_shards(name, count):
            pipe.smembers(moved)
    if strings:
        for shard in range(count):
            pipe.mget([keys.on_shard(name, shard) for name in strings])
    replies = pipe.execute()
    split = len(hashes) * count
    packed = replies[len(replies) - count :] if strings else []
    replies = replies[: len(replies) - count] if strings else replies
    if count == 1:
        found = cast(list[Hash], replies[:split])
        members = [sorted(cast(set[Raw], reply)) for reply in replies[split:]]
        return Replies(found, members, packed[0] if packed else [])
    copies = [replies[i : i + count] for i in range(0, split, count)]
    united = [set().union(*replies[i : i + count]) for i in range(split, len(replies), count)]
    sketches = [shards.merge_sketches(c) for c in zip(*packed, strict=True)]
    return Replies([shards.merge_hashes(c) for c in copies], [sorted(u) for u in united], sketches)
