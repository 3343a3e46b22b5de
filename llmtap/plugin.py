"""The public API for writing an analyzer: a worker that folds stream events into Redis writes.

An analyzer declares its name and consumer group and folds decoded events into :class:`Writes`
(hash increments, min/max, set members, packed sketches, capped sorted sets, latest values,
TTLs, outbox messages); the runtime does the rest, exactly as for the built-in workers (which are
declared with this same :class:`Worker`): the group at id 0, batched reads, one atomic commit of the
writes with the XACKs, reclaim of abandoned entries, the dead-letter stream, heartbeats,
counters, burst mode and SIGTERM. A plugin is a :class:`Worker` published under the
entry-point group ``llmtap.workers``; everything it writes must lie under
``keys.plugin_prefix(name)`` (a commit that writes elsewhere is refused). See docs/plugins.md.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from llmtap import aggregates, events, keys, notify
from llmtap.analyzers import sketch
from llmtap.analyzers.rules.model import fingerprint
from llmtap.consumers.runtime.commit import Writes
from llmtap.consumers.runtime.config import Retention
from llmtap.consumers.runtime.consumer import Processor
from llmtap.consumers.runtime.context import WorkerContext

__all__ = [
    "ENTRY_POINT_GROUP",
    "Analyzer",
    "BaseAnalyzer",
    "PluginError",
    "Retention",
    "Worker",
    "WorkerContext",
    "Writes",
    "add_sketch",
    "confine",
    "notification",
]

#: The entry-point group plugins publish their :class:`Worker` under (the name is the worker's).
ENTRY_POINT_GROUP: Final = "llmtap.workers"

#: What an analyzer implements (the protocol the runtime drives): ``group``, ``wants_calls``,
#: ``wants_rollups``, ``add_call(event)``, ``add_rollup(event)``, ``writes()`` and ``clear()``.
#: The runtime folds every event of a unit (about a second of the stream) with ``add_*``, then
#: commits ``writes()`` with the unit's XACKs and calls ``clear()``. When a commit conflicts
#: (a reclaimer took entries meanwhile) it clears and folds the remaining entries again, so
#: the fold must depend only on the events (no clock, no I/O, no randomness).
Analyzer = Processor

# A coroutine given the context, the stop event and burst mode (built-in workers only).
Task = Callable[[WorkerContext, asyncio.Event, bool], Awaitable[None]]


class PluginError(ValueError):
    """A plugin that cannot run: bad declaration, wrong type, or writes outside its prefix."""


@dataclass(frozen=True)
class Worker:
    """A worker kind: its name, consumer group, one-line summary and analyzer factory.

    ``build(ctx)`` runs once per committed unit, so it only assembles what ``ctx`` holds (the
    settings, the retention TTLs, the environment snapshot). :meth:`plugin` sets ``group`` to
    ``name`` unless told otherwise.
    ``sidecar`` (a coroutine beside the consumer) and ``runner`` (run instead of a consumer)
    are for built-in workers: a plugin that declares them is refused.
    """

    name: str
    group: str
    summary: str
    build: Callable[[WorkerContext], Processor]
    sidecar: Task | None = None
    runner: Task | None = None

    @classmethod
    def plugin(
        cls, name: str, summary: str, build: Callable[[WorkerContext], Processor], *,
        group: str | None = None,
    ) -> Worker:  # fmt: skip
        """Return a plugin worker (group = name unless given); raise PluginError for a name
        that cannot be a key segment and group."""
        try:
            keys.check_plugin_name(name)
        except ValueError as exc:
            raise PluginError(str(exc)) from None
        return cls(name, group or name, summary, build)


class BaseAnalyzer:
    """A convenient base: fold into ``self.out`` and the runtime commits it.

    Subclasses set ``group`` (llmtap runs a plugin with its Worker's group whatever the
    analyzer says; set it anyway for code that drives the analyzer directly), override
    ``add_call`` (and ``add_rollup`` with ``wants_rollups = True``) and write into
    ``self.out``, a fresh :class:`Writes` after every ``clear``.
    """

    group: str = ""
    wants_calls: bool = True
    wants_rollups: bool = False

    def __init__(self) -> None:
        self.out = Writes()

    def add_call(self, event: events.CallEvent) -> None:
        """Fold one call event (none by default)."""

    def add_rollup(self, event: events.RollupEvent) -> None:
        """Fold one rollup, counted once per (producer, seq) (none by default)."""

    def writes(self) -> Writes:
        """Return what was folded since the last ``clear``."""
        return self.out

    def clear(self) -> None:
        """Forget everything folded."""
        self.out = Writes()


def add_sketch(
    writes: Writes,
    key: str,
    metric: str,
    values: Sequence[float],
    weights: Sequence[float] | None = None,
) -> None:
    """Add ``values`` (weights default to 1) to the mergeable sketch ``metric`` of hash
    ``key``, in the latency hashes' format (``<metric>:n``, ``:w``, ``:sum``, ``:min``,
    ``:max`` and the packed sketch ``<metric>:sketch``, see ``Writes.sketches``) that
    :func:`llmtap.read.ranges.timings` reads back."""
    if not values:
        return
    w = [1.0] * len(values) if weights is None else list(weights)
    field = aggregates.timing_field
    ints, floats = writes.ints[key], writes.floats[key]
    ints[field(metric, "n")] += len(values)
    floats[field(metric, "w")] += math.fsum(w)
    floats[field(metric, "sum")] += math.fsum(v * x for v, x in zip(values, w, strict=True))
    packed = writes.sketches[key][aggregates.sketch_field(metric)]
    for index, weight in sketch.accumulate(values, w).items():
        packed[index] += weight
    writes.set_min(key, field(metric, "min"), min(values))
    writes.set_max(key, field(metric, "max"), max(values))


def notification(
    plugin: str,
    *,
    rule: str,
    key: str,
    summary: str,
    at: float,
    labels: Mapping[str, str] | None = None,
    values: Mapping[str, float] | None = None,
    thresholds: Mapping[str, float] | None = None,
    severity: str = "warning",
) -> dict[str, str]:
    """Return an outbox message (a firing alert) to append to ``Writes.notify``.

    ``key`` makes the message's idempotency key (``<plugin>:<key>``): a receiver that gets the
    same key twice drops the copy. The notifier routes, silences and delivers it like the
    alerts worker's alerts (``rule`` is ``<plugin>:<rule>``, ``kind`` is ``plugin``).
    """
    name = f"{plugin}:{rule}"
    tags = dict(labels or {})
    doc: dict[str, Any] = {
        "fingerprint": fingerprint(name, tags),
        "rule": name,
        "kind": "plugin",
        "severity": severity,
        "summary": summary,
        "labels": tags,
        "values": dict(values or {}),
        "thresholds": dict(thresholds or {}),
        "status": "firing",
        "startsAt": at,
        "endsAt": None,
        "sequence": 1,
        "idempotency_key": f"{plugin}:{key}",
        "version": 1,
    }
    return notify.encode_message(notify.OutboxMessage("alert", doc))


class _Confined:
    """A plugin's analyzer whose writes are checked against the plugin's key prefix."""

    def __init__(self, inner: Processor, plugin: str, group: str) -> None:
        if getattr(inner, "script_parts", None):
            raise PluginError(f"plugin {plugin}: script_parts are for built-in workers")
        self.inner = inner
        self.plugin = plugin
        self.prefix = keys.plugin_prefix(plugin)
        self.group = group
        self.wants_calls = bool(inner.wants_calls)
        self.wants_rollups = bool(inner.wants_rollups)
        # Bound once: the runtime calls these per event.
        self.add_call = inner.add_call
        self.add_rollup = inner.add_rollup
        self.clear = inner.clear

    def writes(self) -> Writes:
        """Return the inner writes; raise PluginError naming a key outside the prefix."""
        out = self.inner.writes()
        if not isinstance(out, Writes):
            raise PluginError(f"plugin {self.plugin}: writes() returned {type(out).__name__}")
        if out.alerts:
            raise PluginError(f"plugin {self.plugin}: alert steps are for the alerts worker")
        for key in _written_keys(out):
            if not key.startswith(self.prefix):
                raise PluginError(
                    f"plugin {self.plugin} wrote {key[:120]!r}, outside its prefix {self.prefix}"
                )
        for key, fields in out.sketches.items():
            for name, bins in fields.items():
                _check_bins(self.plugin, f"{key} {name}", bins)
        return out


def _check_bins(plugin: str, key: str, bins: Mapping[int, float]) -> None:
    """Raise PluginError for a packed-sketch bin the sketch does not have (the commit script
    would pad the string out to it) or a weight that is negative, NaN or infinite."""
    for index, weight in bins.items():
        in_range = index == sketch.ZERO_INDEX or sketch.MIN_INDEX <= index <= sketch.MAX_INDEX
        if not (isinstance(index, int) and in_range and 0.0 <= weight < math.inf):
            raise PluginError(
                f"plugin {plugin}: sketch {key[:120]!r} bin {index!r} weight {weight!r}: bins "
                f"are sketch.ZERO_INDEX or in [{sketch.MIN_INDEX}, {sketch.MAX_INDEX}], "
                "weights finite and non-negative"
            )


def _written_keys(out: Writes) -> set[str]:
    tables: tuple[Mapping[str, Any], ...] = (
        out.ints, out.floats, out.mins, out.maxs, out.members, out.sketches, out.top, out.latest,
        out.ttl,
    )  # fmt: skip
    return {key for table in tables for key in table}


def confine(worker: Worker) -> Worker:
    """Return ``worker`` with every commit checked against its key prefix (how the registry
    runs a plugin). Raises PluginError for a bad name or a runner/sidecar."""
    keys_name = worker.name
    try:
        keys.check_plugin_name(keys_name)
    except ValueError as exc:
        raise PluginError(str(exc)) from None
    if worker.runner is not None or worker.sidecar is not None:
        raise PluginError(f"plugin {keys_name}: runner and sidecar are for built-in workers")
    if not isinstance(worker.group, str) or not worker.group:
        raise PluginError(f"plugin {keys_name}: group must be a non-empty string")
    inner = worker.build

    def build(ctx: WorkerContext) -> Processor:
        return _Confined(inner(ctx), keys_name, worker.group)

    return Worker(worker.name, worker.group, worker.summary, build)
