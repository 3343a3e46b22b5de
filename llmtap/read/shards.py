"""Reading aggregates that live on several shards, as if they were one key.

With ``LLMTAP_SHARDS`` = N, each worker writes its shard's copy of a key (``llmtap:{s<k>}:...``,
see :func:`llmtap.keys.on_shard`); readers ask for the shard-0 name and get the shards merged:
counters and the bins of packed sketches (``*:sketch``) summed (integers exactly), ``*:min``
fields and ``first_seen`` by their minimum, ``*:max``, ``|max*`` fields and ``last_seen`` by
their maximum; sets united; sorted sets united in score order; a stream's consumer groups
summed (lag, pending) and its keys found by a SCAN of every shard's pattern. How many shards
there are comes from the layout record the workers write (``keys.LAYOUT``); without it there is
one. With one shard every function sends exactly the commands a single read would and returns
the replies unchanged.

Every reader that can meet a shard key goes through this module (or :mod:`llmtap.read.fetch`,
built on it); nothing else in ``llmtap.read`` names a shard's copy of a key. The ``*_by_shard``
functions keep the shards apart, for the per-shard health ``/metrics`` shows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

import redis

from llmtap import aggregates, keys
from llmtap.read import wire

Raw = bytes | str
P = ParamSpec("P")
T = TypeVar("T")
_MIN: Final = (":min",)
_MAX: Final = (":max",)
_SKETCH: Final = ":" + aggregates.SKETCH_STAT
# Keys a SCAN of the read side asks for per call: a day of 1M events leaves ~16k keys, which
# COUNT 1000 walks in 17 round trips (9.6 ms) and COUNT 10000 in 2 (6.7 ms).
SCAN_COUNT: Final = 10_000
# The session summary's first and last event times (llmtap.aggregates.decode_session).
_LOWEST: Final = frozenset({"first_seen"})
_HIGHEST: Final = frozenset({"last_seen"})


@dataclass(frozen=True)
class Layout:
    """What the layout record (``keys.LAYOUT``) tells a reader: how many shards to merge, and
    since when the workers write every granularity (see :func:`tiers_since`)."""

    shards: int
    tiers_since: float


_PINNED: ContextVar[tuple[redis.Redis, Layout] | None] = ContextVar("llmtap_layout", default=None)


def layout(client: redis.Redis) -> Layout:
    """Return the layout record (one HMGET; inside :func:`one_layout`, the one read there)."""
    pinned = _PINNED.get()
    if pinned is not None and pinned[0] is client:
        return pinned[1]
    fields = [keys.LAYOUT_VERSION_FIELD, keys.LAYOUT_SHARDS_FIELD, keys.LAYOUT_TIERS_FIELD]
    version, shards, since = client.hmget(keys.LAYOUT, fields)
    return Layout(_shards(shards), _tiers_since(version, since))


@contextmanager
def one_layout(client: redis.Redis) -> Iterator[Layout]:
    """Read the layout record once for every read of ``client`` inside (one request's: a
    report's dozen fetches would each read it again)."""
    pinned = _PINNED.get()
    if pinned is not None and pinned[0] is client:  # already inside one for this client
        yield pinned[1]
        return
    found = layout(client)
    token = _PINNED.set((client, found))
    try:
        yield found
    finally:
        _PINNED.reset(token)


def reads_one_layout(
    view: Callable[Concatenate[redis.Redis, P], T],
) -> Callable[Concatenate[redis.Redis, P], T]:
    """Run ``view(client, ...)`` inside :func:`one_layout` of its client."""

    @functools.wraps(view)
    def wrapper(client: redis.Redis, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with one_layout(client):
            return view(client, *args, **kwargs)

    return wrapper


def shard_count(client: redis.Redis) -> int:
    """Return how many shards the workers record using (1 when none is recorded)."""
    return layout(client).shards


def tiers_since(client: redis.Redis) -> float:
    """Return since when the workers write every granularity (Unix seconds; see
    ``keys.LAYOUT_TIERS_FIELD``): 0 without a layout record (nothing written yet, or a reset
    since), infinity for a record that layout-3 workers wrote (they wrote minutes, hours and
    days only)."""
    return layout(client).tiers_since


def _shards(raw: Raw | None) -> int:
    try:
        return max(1, int(raw)) if raw is not None else 1
    except ValueError:
        return 1


def _tiers_since(version: Raw | None, since: Raw | None) -> float:
    if since is not None:
        try:
            return float(since)
        except ValueError:
            return math.inf
    return 0.0 if version is None else math.inf


def names_on_shards(name: str, shards: int) -> list[str]:
    """Return the name of a shard-0 key on every shard (``[name]`` for one shard)."""
    return [keys.on_shard(name, shard) for shard in range(shards)]


def is_sharded(name: str) -> bool:
    """True for a shard key (``llmtap:{s0}:...``), False for a control key."""
    return keys.on_shard(name, 1) != name


def hgetall_many(client: redis.Redis, names: Sequence[str]) -> list[dict[Raw, Raw]]:
    """Return each hash of ``names`` (shard-0 names) merged over every shard, in one pipeline."""
    shards = shard_count(client)
    commands = [("HGETALL", moved) for name in names for moved in names_on_shards(name, shards)]
    replies = [wire.as_hash(reply) for reply in wire.execute(client, commands)]
    if shards == 1:
        return replies
    return [merge_hashes(replies[i : i + shards]) for i in range(0, len(replies), shards)]


def hmget_many(
    client: redis.Redis, names: Sequence[str], fields: Sequence[str]
) -> list[list[Raw | None]]:
    """Return ``fields`` of each hash of ``names`` (shard-0 names), each merged over every
    shard as :func:`merge_hashes` merges it (None where no shard has the field), in one
    pipeline."""
    shards = shard_count(client)
    commands = [
        ("HMGET", moved, *fields) for name in names for moved in names_on_shards(name, shards)
    ]
    replies: list[list[Raw | None]] = wire.execute(client, commands)
    if shards == 1:
        return replies
    out = []
    for i in range(0, len(replies), shards):
        copies: list[dict[Raw, Raw]] = [
            {f: v for f, v in zip(fields, reply, strict=True) if v is not None}
            for reply in replies[i : i + shards]
        ]
        merged = merge_hashes(copies)
        out.append([merged.get(f) for f in fields])
    return out


def smembers_many(client: redis.Redis, names: Sequence[str]) -> list[set[Raw]]:
    """Return each set of ``names`` (shard-0 names) united over every shard, in one pipeline."""
    shards = shard_count(client)
    commands = [("SMEMBERS", moved) for name in names for moved in names_on_shards(name, shards)]
    replies = wire.execute(client, commands)
    return [set().union(*replies[i : i + shards]) for i in range(0, len(replies), shards)]


def zrange_many(
    client: redis.Redis, names: Sequence[str], newest: int | None = None
) -> list[list[Raw]]:
    """Return the members of each sorted set of ``names`` (shard-0 names) by ascending score,
    ties by member (Redis's own order), united over every shard, in one pipeline: all of them,
    or the ``newest`` (highest-scored) only.

    Each shard trims its own copy (a timeline to its newest events, the top calls to the
    costliest), so a union may hold more members than one server's copy would have kept.
    """
    shards = shard_count(client)
    start = 0 if newest is None else -newest
    pipe = client.pipeline(transaction=False)
    for name in names:
        for moved in names_on_shards(name, shards):
            if shards == 1:
                pipe.zrange(moved, start, -1)
            else:
                pipe.zrange(moved, start, -1, withscores=True)
    replies: list[Any] = pipe.execute()
    if shards == 1:
        return [list(reply) for reply in replies]
    out = []
    for i in range(0, len(replies), shards):
        scored = {member: score for reply in replies[i : i + shards] for member, score in reply}
        ordered = sorted(scored, key=lambda m: (scored[m], _bytes(m)))
        out.append(ordered[start:] if newest is not None else ordered)
    return out


def scan_names(client: redis.Redis, pattern: str) -> list[tuple[int, str]]:
    """Return (shard, key name) of every key matching the shard-0 ``pattern`` on any shard
    (one SCAN per shard; on a cluster redis-py scans every primary), by shard then name."""
    found = []
    for shard, moved in enumerate(names_on_shards(pattern, shard_count(client))):
        names = client.scan_iter(match=moved, count=SCAN_COUNT)
        found.extend(sorted((shard, _text(name)) for name in names))
    return found


def group_infos(client: redis.Redis, stream: str = keys.EVENTS) -> dict[str, dict[str, Any]]:
    """Return each consumer group of ``stream`` (XINFO GROUPS, by group name), summed over
    every shard's copy of a shard stream: ``lag`` (None when any shard's is unknown) and
    ``pending`` added, ``consumers`` the most on one shard (every replica has one consumer per
    shard it reads). One shard's answer comes back as it is; a stream that does not exist yet
    has no groups. Other Redis errors propagate."""
    return merge_group_infos(group_infos_by_shard(client, stream))


def group_infos_by_shard(
    client: redis.Redis, stream: str = keys.EVENTS
) -> list[dict[str, dict[str, Any]]]:
    """Return the consumer groups (XINFO GROUPS, by name) of each shard's copy of ``stream``
    (one copy for a control stream), in one pipeline. Redis errors other than "no such
    stream" propagate."""
    copies = names_on_shards(stream, shard_count(client)) if is_sharded(stream) else [stream]
    pipe = client.pipeline(transaction=False)
    for moved in copies:
        pipe.xinfo_groups(moved)
    out: list[dict[str, dict[str, Any]]] = []
    for reply in pipe.execute(raise_on_error=False):
        if isinstance(reply, redis.ResponseError):  # no such stream (yet)
            reply = []
        elif isinstance(reply, Exception):
            raise reply
        out.append({_text(info["name"]): dict(info) for info in reply})
    return out


def merge_group_infos(copies: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Merge the groups of several shards' copies of a stream (see :func:`group_infos`)."""
    if len(copies) == 1:
        return dict(copies[0])
    out = {}
    for group in sorted({name for copy in copies for name in copy}):
        infos = [copy[group] for copy in copies if group in copy]
        lags = [info.get("lag") for info in infos]
        out[group] = {
            "name": infos[0]["name"],
            "lag": None if None in lags else sum(int(str(lag)) for lag in lags),
            "pending": sum(int(info["pending"]) for info in infos),
            "consumers": max(int(info["consumers"]) for info in infos),
        }
    return out


def stream_lengths(client: redis.Redis, names: Sequence[str]) -> list[int]:
    """Return the length of each stream of ``names`` (shard-0 names for shard streams), summed
    over every shard, in one pipeline (0 for a stream that does not exist)."""
    return [sum(lengths) for lengths in stream_lengths_by_shard(client, names)]


def stream_lengths_by_shard(client: redis.Redis, names: Sequence[str]) -> list[list[int]]:
    """Return, for each stream of ``names``, the length of every shard's copy (one length for
    a control stream), in one pipeline."""
    shards = shard_count(client)
    spans = [names_on_shards(n, shards) if is_sharded(n) else [n] for n in names]
    pipe = client.pipeline(transaction=False)
    for copies in spans:
        for moved in copies:
            pipe.xlen(moved)
    replies = iter(pipe.execute())
    return [[int(next(replies)) for _ in copies] for copies in spans]


def merge_hashes(replies: Sequence[Mapping[Raw, Raw]]) -> dict[Raw, Raw]:
    """Merge one hash's copies: sums; minima of ``*:min`` and ``first_seen``; maxima of
    ``*:max``, ``|max*`` and ``last_seen``.

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
    if name.endswith(_MIN) or name in _LOWEST:
        return min(old, new)
    if name.endswith(_MAX) or name in _HIGHEST or name.rpartition("|")[2].startswith("max"):
        return max(old, new)
    return old + new


def _number(raw: Raw) -> int | float:
    text = _text(raw)
    try:
        return int(text)
    except ValueError:
        return float(text)


def _text(value: Raw) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: Raw) -> bytes:
    return value.encode() if isinstance(value, str) else value
