"""The one place the read side fetches aggregate hashes and sets: every key a request needs, in
one pipeline (one round trip), so a view never re-reads a bucket another view already read.

Readers that later merge shards (one hash per shard and bucket) do it here: the callers get the
replies in the order of the keys they asked for and never see a shard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import redis

from llmtap.aggregates import Raw

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
    pipe = client.pipeline(transaction=False)
    for name in hashes:
        pipe.hgetall(name)
    for name in sets:
        pipe.smembers(name)
    replies = pipe.execute()
    found = cast(list[Hash], replies[: len(hashes)])
    members = [sorted(cast(set[Raw], reply)) for reply in replies[len(hashes) :]]
    return Replies(found, members)
