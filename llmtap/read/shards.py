"""Reading aggregates that live on several shards, as if they were one hash or set.

With ``LLMTAP_SHARDS`` = N, each worker writes its shard's copy of a key (``llmtap:{s<k>}:...``,
see :func:`llmtap.keys.on_shard`); readers ask for the shard-0 name and get the shards merged:
counters and the bins of packed sketches (``*:sketch``) summed (integers exactly), ``*:min``
fields by their minimum, ``*:max`` and ``|max*`` fields by their maximum; sets united. How many
shards there are comes from the layout record the workers write (``keys.LAYOUT``); without it
there is one. With one shard every function sends exactly the commands a single read would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import redis

from llmtap import aggregates, keys

Raw = bytes | str
_MIN: Final = (":min",)
_MAX: Final = (":max",)
_SKETCH: Final = ":" + aggregates.SKETCH_STAT


def shard_count(client: redis.Redis) -> int:
    """Return how many shards the workers record using (1 when none is recorded)."""
    raw = client.hget(keys.LAYOUT, keys.LAYOUT_SHARDS_FIELD)
    try:
        return max(1, int(raw)) if raw is not None else 1
    except ValueError:
        return 1


def names_on_shards(name: str, shards: int) -> list[str]:
    """Return the name of a shard-0 key on every shard (``[name]`` for one shard)."""
    return [keys.on_shard(name, shard) for shard in range(shards)]


def hgetall_many(client: redis.Redis, names: Sequence[str]) -> list[dict[Raw, Raw]]:
    """Return each hash of ``names`` (shard-0 names) merged over every shard, in one pipeline."""
    shards = shard_count(client)
    pipe = client.pipeline(transaction=False)
    for name in names:
        for moved in names_on_shards(name, shards):
            pipe.hgetall(moved)
    replies: list[dict[Raw, Raw]] = pipe.execute()
    if shards == 1:
        return replies
    return [merge_hashes(replies[i : i + shards]) for i in range(0, len(replies), shards)]


def smembers_many(client: redis.Redis, names: Sequence[str]) -> list[set[Raw]]:
    """Return each set of ``names`` (shard-0 names) united over every shard, in one pipeline."""
    shards = shard_count(client)
    pipe = client.pipeline(transaction=False)
    for name in names:
        for moved in names_on_shards(name, shards):
            pipe.smembers(moved)
    replies: list[set[Raw]] = pipe.execute()
    return [set().union(*replies[i : i + shards]) for i in range(0, len(replies), shards)]


def merge_hashes(replies: Sequence[Mapping[Raw, Raw]]) -> dict[Raw, Raw]:
    """Merge one hash's copies: sums, minima of ``*:min``, maxima of ``*:max`` and ``|max*``.

    Integers stay exact integers; anything else is summed as a float (repr round-trips).
    """
    out: dict[Raw, int | float] = {}
    sketches: dict[Raw, list[bytes]] = {}
    for reply in replies:
        for name, raw in reply.items():
            if _text(name).endswith(_SKETCH):
                sketches.setdefault(name, []).append(_bytes(raw))
                continue
            value = _number(raw)
            old = out.get(name)
            out[name] = value if old is None else _combine(_text(name), old, value)
    merged: dict[Raw, Raw] = {name: repr(value).encode() for name, value in out.items()}
    merged.update((name, merge_sketches(copies)) for name, copies in sketches.items())
    return merged


def merge_sketches(copies: Sequence[bytes]) -> bytes:
    """Merge one packed sketch's copies (bins added in shard order)."""
    if len(copies) == 1:
        return copies[0]
    merged: dict[int, float] = {}
    for copy in copies:
        for index, weight in aggregates.decode_sketch(copy).items():
            merged[index] = merged.get(index, 0.0) + weight
    return aggregates.encode_sketch(merged)


def _combine(name: str, old: int | float, new: int | float) -> int | float:
    if name.endswith(_MIN):
        return min(old, new)
    if name.endswith(_MAX) or name.rpartition("|")[2].startswith("max"):
        return max(old, new)
    return old + new


def _number(raw: Raw) -> int | float:
    text = _text(raw)
    try:
        return int(text)
    except ValueError:
        return float(text)


def _bytes(value: Raw) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _text(value: Raw) -> str:
    return value.decode() if isinstance(value, bytes) else value
