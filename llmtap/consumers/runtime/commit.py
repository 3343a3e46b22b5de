"""The atomic commit: one Lua script applies a unit's writes and acknowledges its entries.

A unit is every entry a consumer merged since its last commit. The script first checks that each
entry id is still pending *and owned by this consumer* (a reclaimer may have taken it with
XAUTOCLAIM, or already acknowledged it) and that no rollup in the unit was counted before. If
anything fails a check it writes nothing and returns the offending ids and rollups, so the
caller rebuilds the unit without them and commits again. Otherwise it records the rollups as
counted, applies the increments, min/max updates, packed-sketch additions, sorted-set and
latest-value writes, sets the TTLs, appends the dead letters, bumps the group's counters,
appends the unit's control record (its alert steps and outbox messages, see :mod:`.relay`) to
the shard's control outbox and XACKs every id, all in one step: a crash anywhere leaves either
all of it or none of it. Every key it touches carries the stream's shard tag, so on a cluster it
runs in one slot.

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
from importlib.resources import files
from typing import Any, Final, TypeVar

import redis.asyncio as aredis
from redis.commands.core import AsyncScript

from llmtap import keys

T = TypeVar("T")

# The Writes lists a script part may apply, one Lua call per item (see ScriptPart).
STEP_FIELDS: Final = ("alerts",)
COMMIT_LUA: Final = (
    files("llmtap.consumers.runtime").joinpath("lua/commit.lua").read_text(encoding="utf-8")
)
# The field of a control outbox entry that holds its record (JSON).
RECORD_FIELD: Final = "u"
# The first line of every script the workers run: a script with a shebang (Redis 7+, Valkey)
# may touch keys of one slot only, so on a cluster a key outside the declared key's slot is
# an error, even on a node that happens to serve both slots (and would stop doing so when
# slots move). A standalone server ignores slots.
ONE_SLOT: Final = "#!lua\n"


@dataclass(frozen=True)
class ScriptPart:
    """Lua that applies a unit's steps: ``source`` defines ``function(o)`` (a ``local
    function``), which the relay script calls on every item of the unit's ``Writes.<field>``
    list, in order, when it applies the unit's control record (committed with the unit's
    XACKs; the relay applies each record once, see :mod:`.relay`).

    The worker whose processor produces such steps owns the Lua file and declares the part
    (a processor's optional ``script_parts`` attribute, or ``Consumer(script_parts=...)``);
    the runtime never imports a worker's module.
    """

    field: str
    function: str
    source: str

    def __post_init__(self) -> None:
        if self.field not in STEP_FIELDS:
            raise ValueError(f"script part field {self.field!r}: accepted: {STEP_FIELDS}")
        if not self.function.isidentifier():
            raise ValueError(f"script part function {self.function!r} is not a Lua name")

    @classmethod
    def from_resource(cls, package: str, resource: str, *, field: str, function: str) -> ScriptPart:
        """Return the part whose source is the package file ``resource`` (``lua/x.lua``).

        Raises FileNotFoundError when the package does not ship that file.
        """
        source = files(package).joinpath(resource).read_text(encoding="utf-8")
        return cls(field, function, source)


def compose(parts: Sequence[ScriptPart] = (), body: str = COMMIT_LUA) -> str:
    """Return the shebang :data:`ONE_SLOT`, every part's source, the STEPS table, then
    ``body`` (the script that calls them: ``relay.lua``; ``commit.lua`` by default, which
    has no steps to call).

    Raises ValueError when two parts apply the same field.
    """
    fields = [part.field for part in parts]
    if len(set(fields)) < len(fields):
        raise ValueError(f"two script parts apply the same field: {fields}")
    steps = ", ".join(f"{{'{part.field}', {part.function}}}" for part in parts)
    sources = "".join(part.source.rstrip("\n") + "\n" for part in parts)
    return f"{ONE_SLOT}{sources}local STEPS = {{{steps}}}\n{body}"


_EXACT_LIMIT: Final = 2**53


@dataclass
class Writes:
    """The merged effect of a unit on the aggregates, produced by a worker's processor.

    ``ints``/``floats``: key -> field -> increment. ``mins``/``maxs``: key -> field -> value,
    kept if lower/higher than the stored one. ``members``: key -> set members to add.
    ``top``: key -> (N, member -> score), trimmed to the N highest. ``latest``: key -> (seq,
    field -> value), written only when ``seq`` is newer. ``ttl``: key -> seconds.
    ``sketches``: key -> field -> bin index -> weight added to the packed sketch in that hash
    field (the format of :func:`llmtap.aggregates.encode_sketch`).
    ``alerts``: alert steps, applied in order by the ``alerts`` :class:`ScriptPart`.
    ``notify``: outbox messages (the stream fields of :func:`llmtap.notify.encode_message`),
    appended to the outbox (``keys.NOTIFY``). Steps and messages are control state: they are
    committed with the XACKs as the unit's control record and relayed once (see :mod:`.relay`).
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
    sketches: defaultdict[str, defaultdict[str, defaultdict[int, float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    )
    top: dict[str, tuple[int, dict[str, float]]] = field(default_factory=dict)
    latest: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)
    ttl: dict[str, int] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    notify: list[dict[str, str]] = field(default_factory=list)

    def on_shard(self, shard: int) -> Writes:
        """Return these writes with every shard-0 key moved to ``shard`` (self when 0)."""
        if shard == 0:
            return self

        def move(table: Mapping[str, T]) -> dict[str, T]:
            return {keys.on_shard(key, shard): value for key, value in table.items()}

        moved = Writes(alerts=self.alerts, top=move(self.top), latest=move(self.latest))
        moved.notify = list(self.notify)  # the outbox is control state: it has no shard
        moved.ttl = move(self.ttl)
        moved.ints.update(move(self.ints))
        moved.floats.update(move(self.floats))
        moved.mins.update(move(self.mins))
        moved.maxs.update(move(self.maxs))
        moved.members.update(move(self.members))
        moved.sketches.update(move(self.sketches))
        return moved

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
    notify_stream: str = keys.NOTIFY
    notify_maxlen: int = 100_000
    control_outbox: str | None = None  # None: shard 0's outbox of ``group``

    def record(self) -> str | None:
        """Return the unit's control record (JSON: its alert steps, its outbox messages and
        where those go), or None when it has neither."""
        w = self.writes
        if not w.alerts and not w.notify:
            return None
        record = {
            "alerts": w.alerts,
            "notify": w.notify,
            "notify_stream": self.notify_stream,
            "notify_maxlen": self.notify_maxlen,
        }
        return _dumps(record)

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
            "sketches": {
                key: {name: _flat_bins(bins) for name, bins in fields.items()}
                for key, fields in w.sketches.items()
            },
            "top": w.top,
            "latest": w.latest,
            "ttl": w.ttl,
            "dlq": [self._letter_fields(letter) for letter in self.dead_letters],
            "dlq_stream": self.dlq,
            "dlq_maxlen": self.dlq_maxlen,
            "stats": self.stats_key,
            "counters": self.counters,
        }
        record = self.record()
        if record is not None:  # absent, not null: cjson's null is true in Lua
            document["ctl_stream"] = self.control_outbox or keys.control_outbox(self.group)
            document["ctl_record"] = record
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


def _flat_bins(bins: Mapping[int, float]) -> list[int | float]:
    """Return ``[index, weight, ...]`` in index order (the zero bin first), no zero weights."""
    return [x for i in sorted(bins) if bins[i] for x in (i, bins[i])]


def _dumps(document: object) -> str:
    return json.dumps(document, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Outcome:
    """The script's answer: applied, or the ids and rollup marks that stopped it."""

    applied: bool
    lost_ids: frozenset[bytes]
    duplicate_marks: frozenset[tuple[str, str]]


class Committer:
    """Runs the commit script with one EVALSHA per commit (reloading it after a server restart
    or SCRIPT FLUSH). ``parts`` are the script parts that will apply the units' steps (in the
    relay): a unit with steps that none of them applies is refused."""

    def __init__(self, client: aredis.Redis, parts: Sequence[ScriptPart] = ()) -> None:
        self._script: AsyncScript = client.register_script(compose())
        self._fields = frozenset(part.field for part in parts)

    async def commit(self, commit: Commit) -> Outcome:
        """Apply ``commit`` atomically; return what happened.

        Raises LookupError when the writes hold steps no script part applies (they would be
        lost), and redis errors as they come.
        """
        if commit.writes.alerts and "alerts" not in self._fields:
            raise LookupError("the unit has alert steps but no script part applies 'alerts'")
        # The stream is the one declared key: a cluster client routes the script to its slot.
        reply = await self._script(keys=[commit.stream], args=commit.args())
        applied, lost, dups = reply
        if applied == 1:
            return Outcome(True, frozenset(), frozenset())
        marks = {(_text(dups[i]), _text(dups[i + 1])) for i in range(0, len(dups), 2)}
        return Outcome(False, frozenset(bytes(x) for x in lost), frozenset(marks))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
