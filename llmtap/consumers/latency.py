"""The latency worker: mergeable sketches of call timings per backend, model and bucket.

Each call event is weighted by ``1 / sample_rate``, so the sketches estimate every call, not
just the sampled ones. Per bucket (every granularity) and (backend, model) one hash holds, for
each of ``latency``, ``network``, ``processing`` and ``ttft``: ``<metric>:n`` (events,
unweighted), ``<metric>:w`` (weighted count), ``<metric>:sum`` (weighted sum, seconds),
``<metric>:min`` and ``<metric>:max``; and output tokens/s as ``tps:n``, ``tps:w`` and
``tps:sum``; and each metric's sketch bins packed into one more field, ``<metric>:sketch``
(written with ``Writes.sketches``), so a reader gets a sketch as one value instead of one hash
field per bin. Each event is one ``extend`` of a flat list;
at commit time numpy builds the columns, buckets them per minute and summarises each (minute,
backend, model) group, so a commit writes each field once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from llmtap import aggregates, events, keys
from llmtap.aggregates import TimingFields
from llmtap.analyzers import sketch
from llmtap.plugin import Retention, Writes

TIMINGS: Final = aggregates.TIMINGS
_MINUTE: Final = keys.BUCKET_SECONDS["m"]
_SKETCH_FIELDS: Final = {timing: aggregates.sketch_field(timing) for timing in TIMINGS}

FloatArray = npt.NDArray[np.float64]


def summarize(values: FloatArray, weights: FloatArray) -> TimingFields | None:
    """Summarise the finite values (NaN means unknown) with their weights; None if none."""
    known = ~np.isnan(values)
    if not known.any():
        return None
    v, w = values[known], weights[known]
    return TimingFields(
        n=int(v.size),
        w=float(w.sum()),
        # Not np.dot: it goes to multithreaded BLAS, whose threads cost milliseconds per call
        # on a loaded machine (measured 15 ms against 18 µs for this, over 15k values).
        total=float((v * w).sum()),
        low=float(v.min()),
        high=float(v.max()),
        bins=sketch.accumulate(v, w),
    )


def tokens_per_s(output_tokens: FloatArray, latency: FloatArray, ttft: FloatArray) -> FloatArray:
    """Return output tokens/s after the first token (NaN where undefined), like the property
    :attr:`events.CallEvent.output_tokens_per_s`, for whole columns at once."""
    span = latency - np.nan_to_num(ttft, nan=0.0)
    defined = (output_tokens > 0) & (span > 0)
    safe_span = np.where(defined, span, 1.0)
    out: FloatArray = np.where(defined, output_tokens / safe_span, np.nan)
    return out


class _Columns:
    """The calls folded so far, flat (one Python list, eight values per call): the call's
    (backend, model) pair id, start time, sample rate, the four timings (None where unknown)
    and output tokens. One ``extend`` per call; numpy builds the columns at commit time."""

    WIDTH: Final = 8

    def __init__(self) -> None:
        self.flat: list[float | int | None] = []

    def __len__(self) -> int:
        return len(self.flat) // self.WIDTH

    def arrays(
        self,
    ) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray, FloatArray, list[FloatArray]
    ]:
        """Return pair ids, minutes, weights, tokens/s and the timings (NaN where unknown)."""
        table = np.array(self.flat, dtype=np.float64).reshape(-1, self.WIDTH)
        pair = table[:, 0].astype(np.int64)
        # Python's float floor division, as keys.bucket_start does it, for the whole column.
        minute = np.floor_divide(table[:, 1], _MINUTE).astype(np.int64) * _MINUTE
        weight = 1.0 / table[:, 2]
        timings = [table[:, i] for i in range(3, 7)]
        tps = tokens_per_s(table[:, 7], timings[0], timings[3])
        return pair, minute, weight, tps, timings


def _groups(
    pair: npt.NDArray[np.int64], minute: npt.NDArray[np.int64]
) -> list[tuple[int, int, npt.NDArray[np.intp]]]:
    """Return (pair, minute, row indexes) per distinct (pair, minute), in order of first
    appearance, rows in arrival order (so float sums add up as they did event by event)."""
    order = np.lexsort((minute, pair))  # stable: equal keys keep arrival order
    p, m = pair[order], minute[order]
    change = np.flatnonzero((p[1:] != p[:-1]) | (m[1:] != m[:-1])) + 1
    bounds = np.concatenate(([0], change, [order.size]))
    groups = [
        (int(p[lo]), int(m[lo]), order[lo:hi])
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
    ]
    groups.sort(key=lambda group: int(group[2][0]))
    return groups


class LatencyProcessor:
    """Folds call events into flat columns; writes merged sketches per (minute, backend, model)."""

    group = keys.GROUP_LATENCY
    wants_calls = True
    wants_rollups = False

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self._pairs: dict[str, dict[str, int]] = {}  # backend -> model -> pair id
        self._pair_names: list[tuple[str, str]] = []
        self._columns = _Columns()
        self._names: dict[tuple[str, int], str] = {}

    def add_call(self, event: events.CallEvent) -> None:
        """Append one call's pair, start, rate, timings and output tokens to the columns."""
        backend = event.backend
        models = self._pairs.get(backend)
        if models is None:
            models = self._pairs[backend] = {}
        pair = models.get(event.model_name)
        if pair is None:
            pair = models[event.model_name] = len(self._pair_names)
            self._pair_names.append((backend, event.model_name))
        self._columns.flat.extend(
            (
                pair,
                event.start_time,
                event.sample_rate,
                event.latency,
                event.network_latency,
                event.processing_time,
                event.ttft,
                event.output_tokens,
            )
        )

    def add_rollup(self, event: events.RollupEvent) -> None:
        """Rollups carry no timings; calls per minute come from the cost worker's usage."""

    def writes(self) -> Writes:
        """Return the sketch increments and stats of every group, in every granularity."""
        writes = Writes()
        if not len(self._columns):
            return writes
        pair, minute, weight, tps, timings = self._columns.arrays()
        for pair_id, start, rows in _groups(pair, minute):
            backend, model = self._pair_names[pair_id]
            fields = _fields(timings, tps, weight, rows)
            for granularity in keys.GRANULARITIES:
                key = self._key(writes, granularity, start, backend, model)
                fields.write(writes, key)
        return writes

    def clear(self) -> None:
        """Forget everything folded."""
        self._columns = _Columns()
        if len(self._pair_names) > 10_000:
            self._pairs.clear()
            self._pair_names.clear()
        if len(self._names) > 10_000:
            self._names.clear()

    def _key(self, writes: Writes, granularity: str, minute: int, backend: str, model: str) -> str:
        """Return the latency hash of one group (and set its TTL and index membership)."""
        name = self._names.get((granularity, minute))
        if name is None:
            name = self._names[granularity, minute] = keys.bucket(granularity, minute)
        key = keys.latency(granularity, name, backend, model)
        index = keys.latency_index(granularity, name)
        writes.members[index].add(aggregates.latency_member(backend, model))
        ttl = self.retention.ttl(granularity)
        writes.ttl[key] = writes.ttl[index] = ttl
        return key


@dataclass
class _Fields:
    """The fields one group of events adds to its latency hash (the same in every granularity)."""

    ints: list[tuple[str, int]]
    floats: list[tuple[str, float]]
    mins: list[tuple[str, float]]
    maxs: list[tuple[str, float]]
    bins: list[tuple[str, dict[int, float]]]  # per timing with events: its sketch's bins

    def write(self, writes: Writes, key: str) -> None:
        ints, floats = writes.ints[key], writes.floats[key]
        for name, count in self.ints:
            ints[name] += count
        for name, value in self.floats:
            floats[name] += value
        sketches = writes.sketches[key]
        for timing, bins in self.bins:
            packed = sketches[_SKETCH_FIELDS[timing]]
            for index, weight in bins.items():
                packed[index] += weight
        for name, value in self.mins:
            writes.set_min(key, name, value)
        for name, value in self.maxs:
            writes.set_max(key, name, value)


def _fields(
    timings: list[FloatArray], tps: FloatArray, weight: FloatArray, rows: npt.NDArray[np.intp]
) -> _Fields:
    out = _Fields([], [], [], [], [])
    w = weight[rows]
    for timing, column in zip(TIMINGS, timings, strict=True):
        summary = summarize(column[rows], w)
        if summary is not None:
            _add_timing(out, timing, summary)
    speed = summarize(tps[rows], w)
    if speed is not None:
        field = aggregates.timing_field
        out.ints.append((field(aggregates.TPS, "n"), speed.n))
        out.floats += [
            (field(aggregates.TPS, "w"), speed.w),
            (field(aggregates.TPS, "sum"), speed.total),
        ]
    return out


def _add_timing(out: _Fields, timing: str, summary: TimingFields) -> None:
    field = aggregates.timing_field
    out.ints.append((field(timing, "n"), summary.n))
    out.floats += [(field(timing, "w"), summary.w), (field(timing, "sum"), summary.total)]
    out.bins.append((timing, summary.bins))
    out.mins.append((field(timing, "min"), summary.low))
    out.maxs.append((field(timing, "max"), summary.high))
