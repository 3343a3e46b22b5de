"""The latency sketches of a range, merged with numpy: each latency hash's text fields are
decoded once into (field code, value) arrays, and its packed sketches (those of a whole read
with one ``numpy.frombuffer``) stay runs of consecutive bin weights, views of that one buffer.
Each grouping (per model, per backend, everything) is merged from them: the fields with one
``numpy.bincount``, each sketch's bins with one slice addition into its group's dense row.

Both add the values of a slot in hash order, as the per-dict merge did, so merged weights,
counts and sums are the same floats as adding the hashes one by one in that order (an empty
bin adds 0.0, which changes no sum); the quantiles come from
:func:`llmtap.analyzers.sketch.dense_quantiles` (same rule as
:func:`~llmtap.analyzers.sketch.quantiles`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt

from llmtap import aggregates
from llmtap.aggregates import TIMINGS, TPS, TPS_STATS, Raw
from llmtap.analyzers import sketch
from llmtap.read.fetch import Hash

Pair = tuple[str, str]  # (backend, model)
T = TypeVar("T")
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Field codes: the dense sketch slots of each timing, then each timing's n, w and sum, then
# tokens/s n, w and sum (all additive); then each timing's min, then its max.
_SUMMED: Final = ("n", "w", "sum")
_STATS: Final = len(TIMINGS) * sketch.DENSE_SIZE
_TPS: Final = _STATS + len(_SUMMED) * len(TIMINGS)
ADDITIVE: Final = _TPS + len(TPS_STATS)
_MIN: Final = ADDITIVE
_MAX: Final = ADDITIVE + len(TIMINGS)
_IGNORED: Final = -1
_HEADER: Final = aggregates.SKETCH_HEADER
_MEMO_LIMIT: Final = 100_000  # distinct field names, or values, remembered


def field_code(name: Raw) -> int:
    """Return the code of a latency-hash field (-1 for a field the layout does not define)."""
    parsed = aggregates.parse_latency_field(name)
    if parsed is None:
        return _IGNORED
    timing, stat = parsed
    if timing == TPS:
        return _TPS + TPS_STATS.index(stat)
    t = TIMINGS.index(timing)
    if stat in ("min", "max"):
        return (_MIN if stat == "min" else _MAX) + t
    return _STATS + len(_SUMMED) * t + _SUMMED.index(stat)


class _Memo(dict[Raw, T]):
    """A pure function's answers by argument, computed on first sight and forgotten in bulk
    beyond ``limit`` entries. Field names repeat across hashes (23 in the layout) and so do
    values, so a dict lookup in C replaces most parsing, with the very same results."""

    def __init__(self, compute: Callable[[Raw], T], limit: int) -> None:
        super().__init__()
        self.compute = compute
        self.limit = limit

    def __missing__(self, key: Raw) -> T:
        if len(self) > self.limit:
            self.clear()
        value = self[key] = self.compute(key)
        return value


_CODES: Final = _Memo(field_code, _MEMO_LIMIT)
_FLOATS: Final = _Memo(float, _MEMO_LIMIT)


Run = tuple[int, FloatArray]  # a sketch's log bins: the code of the first, their weights
Bins = tuple[int, int, FloatArray]  # a run of hash i: (i, first code, weights)


@dataclass(frozen=True)
class Decoded:
    """Latency hashes and sketches decoded: per field (and sketch zero bin) its code, value
    and the index of its hash; per sketch its run of log bins, in hash order."""

    pairs: list[Pair]
    codes: IntArray
    values: FloatArray
    owner: IntArray
    bins: list[Bins]

    @cached_property
    def additive(self) -> tuple[IntArray, FloatArray, IntArray]:
        """The fields and bins that add (codes below ``ADDITIVE``): code, value, hash index;
        split out once for every grouping merged from these hashes."""
        keep = (self.codes >= 0) & (self.codes < ADDITIVE)
        return self.codes[keep], self.values[keep], self.owner[keep]

    @cached_property
    def extremes(self) -> tuple[IntArray, FloatArray, IntArray]:
        """The min and max fields (codes from ``ADDITIVE`` on): code, value, hash index."""
        keep = self.codes >= ADDITIVE
        return self.codes[keep], self.values[keep], self.owner[keep]


Part = tuple[IntArray, FloatArray, list[Run]]  # one hash decoded: field codes, values, runs
Packed = Sequence[bytes | None]  # packed sketches, hash-major, in TIMINGS order
# The packed-sketch fields, as a bytes-replying and as a text-replying client names them.
_SKETCH_FIELDS: Final = [
    (aggregates.sketch_field(t).encode(), aggregates.sketch_field(t)) for t in TIMINGS
]


def decode(pairs: Sequence[Pair], replies: Sequence[Hash]) -> Decoded:
    """Return the latency hashes ``replies`` (of ``pairs``, in merge order) decoded.

    Raises ValueError for a packed sketch that is malformed or holds a bin outside the range.
    """
    codes, values, owner, bins = _arrays(replies)
    return Decoded(list(pairs), codes, values, owner, bins)


def decode_parts(replies: Sequence[Hash]) -> list[Part]:
    """Return each latency hash decoded on its own (the unit a cache keeps)."""
    if not replies:
        return []
    codes, values, owner, bins = _arrays(replies)
    order = np.argsort(owner, kind="stable")
    cuts = np.cumsum(np.bincount(owner, minlength=len(replies)))[:-1]
    runs: list[list[Run]] = [[] for _ in replies]
    for i, first, weights in bins:
        runs[i].append((first, weights.copy()))  # a view would keep the whole read's buffer
    split = zip(np.split(codes[order], cuts), np.split(values[order], cuts), runs, strict=True)
    return list(split)


def join(pairs: Sequence[Pair], parts: Sequence[Part]) -> Decoded:
    """Return the hashes decoded by :func:`decode_parts` (of ``pairs``, in merge order)."""
    if not parts:
        return decode(pairs, [])
    sizes = [len(c) for c, _, _ in parts]
    owner = np.repeat(np.arange(len(parts), dtype=np.int64), sizes)
    codes = np.concatenate([c for c, _, _ in parts])
    values = np.concatenate([v for _, v, _ in parts])
    bins = [(i, first, w) for i, (_, _, runs) in enumerate(parts) for first, w in runs]
    return Decoded(list(pairs), codes, values, owner, bins)


def _arrays(replies: Sequence[Hash]) -> tuple[IntArray, FloatArray, IntArray, list[Bins]]:
    names: list[Raw] = []
    values: list[Raw] = []
    sizes = []
    sketches: list[bytes | None] = []
    for reply in replies:
        rest = dict(reply)
        for raw, text in _SKETCH_FIELDS:
            found = rest.pop(raw, None) or rest.pop(text, None)
            sketches.append(found.encode() if isinstance(found, str) else found)
        names.extend(rest.keys())
        values.extend(rest.values())
        sizes.append(len(rest))
    n = len(names)
    codes = np.fromiter(map(_CODES.__getitem__, names), dtype=np.int64, count=n)
    numbers = np.fromiter(map(_FLOATS.__getitem__, values), dtype=np.float64, count=n)
    owner = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    zero_codes, zero_values, zero_owner, bins = _sketches(sketches)
    return (
        np.concatenate([codes, zero_codes]),
        np.concatenate([numbers, zero_values]),
        np.concatenate([owner, zero_owner]),
        bins,
    )


def _sketches(sketches: Packed) -> tuple[IntArray, FloatArray, IntArray, list[Bins]]:
    """Return the packed sketches decoded at once (one join, one ``frombuffer``): (code,
    weight, hash index) of every non-zero zero bin, and each sketch's run of log bins (a view
    of the buffer). The range is checked per sketch, from its first and last bin."""
    blobs = [b or b"" for b in sketches]
    lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    if np.any(lengths % 8) or np.any((lengths > 0) & (lengths < 8 * _HEADER)):
        raise ValueError("a packed sketch is not float64s with a header")
    words = lengths // 8
    values: FloatArray = np.frombuffer(b"".join(blobs), dtype=aggregates.SKETCH_DTYPE)
    starts = np.cumsum(words) - words
    present = np.flatnonzero(words)
    lo = np.zeros(len(blobs), dtype=np.int64)
    lo[present] = values[starts[present]]
    spans = present[words[present] > _HEADER]
    last = lo[spans] + words[spans] - _HEADER - 1
    if np.any((lo[spans] < sketch.MIN_INDEX) | (last > sketch.MAX_INDEX)):
        raise ValueError(f"a sketch bin is outside [{sketch.MIN_INDEX}, {sketch.MAX_INDEX}]")
    timing = present % len(TIMINGS)
    zero = values[starts[present] + 1]
    kept = zero != 0.0
    zero_codes = (timing * sketch.DENSE_SIZE)[kept]
    # Bin i of a timing has slot 1 + i - MIN_INDEX in the timing's dense row (0: the zero bin).
    first = (spans % len(TIMINGS)) * sketch.DENSE_SIZE + 1 + lo[spans] - sketch.MIN_INDEX
    runs = [
        (b // len(TIMINGS), code, values[at + _HEADER : at + size])
        for b, code, at, size in zip(
            spans.tolist(),
            first.tolist(),
            starts[spans].tolist(),
            words[spans].tolist(),
            strict=True,
        )
    ]
    return zero_codes, zero[kept], present[kept] // len(TIMINGS), runs


def group_key(pair: Pair, by: str) -> Pair:
    """Return the group of a (backend, model) under ``by``: itself, (backend, ``*``) or
    (``*``, ``*``)."""
    if by == "model":
        return pair
    return (pair[0], "*") if by == "backend" else ("*", "*")


@dataclass(frozen=True)
class Merged:
    """The sketches of each group merged: additive fields summed, min and max per timing."""

    groups: list[Pair]
    sums: FloatArray  # (groups, ADDITIVE)
    lows: FloatArray  # (groups, timings)
    highs: FloatArray

    def rows(self, qs: Sequence[float], timing: str) -> list[dict[str, Any]]:
        """Return, per group with events of ``timing`` (sorted), the row of
        :func:`llmtap.read.query.latency_percentiles` (without backend and model)."""
        t = TIMINGS.index(timing)
        out = []
        for g, _ in enumerate(self.groups):
            row = self._row(g, t, qs)
            if row is not None:
                out.append(row)
        return out

    def _row(self, g: int, t: int, qs: Sequence[float]) -> dict[str, Any] | None:
        stats = self.sums[g, _STATS + len(_SUMMED) * t : _STATS + len(_SUMMED) * (t + 1)]
        count = int(stats[0])
        if not count:
            return None
        weight, total = float(stats[1]), float(stats[2])
        tps_sum, tps_w = float(self.sums[g, _TPS + 2]), float(self.sums[g, _TPS + 1])
        bins = self.sums[g, t * sketch.DENSE_SIZE : (t + 1) * sketch.DENSE_SIZE]
        row: dict[str, Any] = {
            "count": count,
            "weighted_count": weight,
            "mean": total / weight if weight else None,
            "min": float(self.lows[g, t]),
            "max": float(self.highs[g, t]),
            "generation_tokens_per_s": tps_sum / tps_w if tps_w else None,
        }
        values = sketch.dense_quantiles(bins, qs)
        row.update({label(q): v for q, v in zip(qs, values, strict=True)})
        return {"group": self.groups[g], **row}


def label(q: float) -> str:
    """Return the row key of quantile ``q``: ``p50``, ``p99.9``."""
    return f"p{q * 100:g}"


def merge(decoded: Decoded, by: str) -> Merged:
    """Merge the decoded hashes per group of ``by`` (see :func:`group_key`)."""
    keys = [group_key(pair, by) for pair in decoded.pairs]
    groups = sorted(set(keys))
    index = {g: i for i, g in enumerate(groups)}
    of_hash = np.array([index[k] for k in keys], dtype=np.int64)
    codes, values, owner = decoded.additive
    flat = codes if len(groups) == 1 else (of_hash * ADDITIVE)[owner] + codes
    counted = np.bincount(flat, weights=values, minlength=len(groups) * ADDITIVE)
    row: FloatArray = counted.astype(np.float64, copy=False)
    base = (of_hash * ADDITIVE).tolist()
    for i, first, weights in decoded.bins:
        at = base[i] + first
        row[at : at + weights.size] += weights
    sums = row.reshape(-1, ADDITIVE)
    return Merged(groups, sums, *_extremes(of_hash, *decoded.extremes, len(groups)))


def _extremes(
    of_hash: IntArray, codes: IntArray, values: FloatArray, owner: IntArray, n_groups: int
) -> tuple[FloatArray, FloatArray]:
    n = len(TIMINGS)
    lows = np.full((n_groups, n), np.inf)
    highs = np.full((n_groups, n), -np.inf)
    group = of_hash[owner]
    low = codes < _MIN + n
    np.minimum.at(lows, (group[low], codes[low] - _MIN), values[low])
    high = ~low
    np.maximum.at(highs, (group[high], codes[high] - _MAX), values[high])
    return lows, highs
