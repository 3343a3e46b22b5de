"""Mergeable log-bucket quantile sketches (DDSketch-style, 1% relative accuracy) of latencies.

A sketch is a mapping of bin index -> weight. Bin ``i > ZERO_INDEX`` holds the values in
``(GAMMA**(i-1), GAMMA**i]`` and reports ``bin_value(i)``, within ``RELATIVE_ACCURACY`` of
every value in the bin; its weight is the sum of ``1 / sample_rate`` of the events in it. The
index is the same key as the ``ddsketch`` package's ``LogarithmicMapping`` (offset 0), so
sketches stored as Redis hash fields (``str(index) -> weight``) merge by adding weights, across
time buckets, workers and shards. The workers store them as packed float64 strings
(:func:`llmtap.aggregates.encode_sketch`), the read side merges them as dense arrays.

Range: values from ``MIN_VALUE`` (100 µs) to ``MAX_VALUE`` (one week) keep the 1% bound.
Zero has its own bin, ``ZERO_INDEX``, reported as exactly ``0.0``. Positive values below
``MIN_VALUE`` share the lowest bin and are reported as ``bin_value(MIN_INDEX)`` (about 100 µs,
so an absolute error under 100 µs). Values above ``MAX_VALUE`` share the top bin and are
reported as ``bin_value(MAX_INDEX)`` (about one week). The count, sum, min and max kept beside
a sketch stay exact.

Quantiles use DDSketch's rank definition: with bins in value order and ``W`` the total weight,
the ``q`` quantile is the first bin whose cumulative weight exceeds ``q * (W - 1)``. For
unweighted samples that is the bin of ``numpy.quantile(x, q, method="lower")``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from llmtap import aggregates

RELATIVE_ACCURACY: Final[float] = 0.01
GAMMA: Final[float] = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
MIN_VALUE: Final[float] = 1e-4
MAX_VALUE: Final[float] = 7 * 24 * 3600.0
# Far below every log bin so that sorting indexes sorts values; never a log bin itself.
ZERO_INDEX: Final[int] = aggregates.ZERO_BIN

_MULTIPLIER: Final = 1.0 / math.log(GAMMA)
# Midpoint (in relative error) of the bin (GAMMA**(i-1), GAMMA**i]: GAMMA**i * 2 / (1 + GAMMA).
_VALUE_FACTOR: Final = 2.0 / (1.0 + GAMMA)


def _log_indices(values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    clamped = np.clip(values, MIN_VALUE, MAX_VALUE)
    out: npt.NDArray[np.int64] = np.ceil(np.log(clamped) * _MULTIPLIER).astype(np.int64)
    return out


# Computed by the same code path as every other index, so they agree bit for bit.
MIN_INDEX: Final[int] = int(_log_indices(np.array([MIN_VALUE]))[0])
MAX_INDEX: Final[int] = int(_log_indices(np.array([MAX_VALUE]))[0])


def indices(values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Return the bin index of each value (seconds), as an int64 array of the same shape.

    Raises ValueError if any value is negative, NaN or infinite.
    """
    array = np.asarray(values, dtype=np.float64)
    if not (np.all(array >= 0.0) and np.all(array < np.inf)):
        raise ValueError("sketch values must be finite and non-negative")
    out = _log_indices(array)
    out[array == 0.0] = ZERO_INDEX
    return out


def index(value: float) -> int:
    """Return the bin index of one value (seconds); the same result as :func:`indices`.

    Raises ValueError if the value is negative, NaN or infinite.
    """
    # One code path for scalars and arrays: np.log and math.log may differ in the last bit.
    return int(indices(np.array([value], dtype=np.float64))[0])


def bin_value(i: int) -> float:
    """Return the value that bin ``i`` reports (0.0 for ``ZERO_INDEX``).

    Raises ValueError if ``i`` is not a bin index of this sketch's range.
    """
    if i == ZERO_INDEX:
        return 0.0
    if not MIN_INDEX <= i <= MAX_INDEX:
        raise ValueError(f"bin index {i} is outside [{MIN_INDEX}, {MAX_INDEX}]")
    return math.exp(i / _MULTIPLIER) * _VALUE_FACTOR


def accumulate(values: npt.ArrayLike, weights: npt.ArrayLike) -> dict[int, float]:
    """Return the sketch of a batch: bin index -> summed weight of the values in that bin.

    ``weights`` (usually ``1 / sample_rate``) has the shape of ``values``; bins whose weight
    sums to zero are left out. Raises ValueError for mismatched shapes, a bad value (see
    :func:`indices`) or a negative, NaN or infinite weight.
    """
    value_array = np.asarray(values, dtype=np.float64).ravel()
    weight_array = np.asarray(weights, dtype=np.float64).ravel()
    if value_array.shape != weight_array.shape:
        raise ValueError(f"{value_array.size} values but {weight_array.size} weights")
    if not (np.all(weight_array >= 0.0) and np.all(weight_array < np.inf)):
        raise ValueError("sketch weights must be finite and non-negative")
    # Dense slots: 0 is the zero bin, 1 + (i - MIN_INDEX) the log bins. O(n), no sort.
    slots = indices(value_array) - (MIN_INDEX - 1)
    slots[value_array == 0.0] = 0
    sums = np.bincount(slots, weights=weight_array, minlength=MAX_INDEX - MIN_INDEX + 2)
    present = np.flatnonzero(sums)
    keys = present + (MIN_INDEX - 1)
    keys[present == 0] = ZERO_INDEX
    return dict(zip(keys.tolist(), sums[present].tolist(), strict=True))


def merge(*sketches: Mapping[int, float]) -> dict[int, float]:
    """Return one sketch holding every value of ``sketches`` (weights of equal bins added)."""
    merged: dict[int, float] = {}
    for sketch in sketches:
        for key, weight in sketch.items():
            merged[key] = merged.get(key, 0.0) + weight
    return merged


def quantiles(bins: Mapping[int, float], qs: Sequence[float]) -> list[float | None]:
    """Return the value at each quantile in ``qs`` (None for all if the sketch is empty).

    Bins are sorted once. Bins of zero weight are ignored. Raises ValueError for a quantile
    outside [0, 1], or a negative, NaN or infinite weight.
    """
    for q in qs:
        if not 0.0 <= q <= 1.0:  # also rejects NaN
            raise ValueError(f"quantile {q!r} is not between 0 and 1")
    items = sorted((key, weight) for key, weight in bins.items() if weight != 0.0)
    if any(not 0.0 < weight < math.inf for _, weight in items):
        raise ValueError("sketch weights must be finite and non-negative")
    if not items:
        return [None for _ in qs]
    cumulative = list(itertools.accumulate(weight for _, weight in items))
    # The total is the last cumulative weight, so q = 1 always lands on the last bin.
    total = cumulative[-1]
    last = len(items) - 1
    return [
        bin_value(items[min(bisect.bisect_right(cumulative, q * (total - 1.0)), last)][0])
        for q in qs
    ]


def quantile(bins: Mapping[int, float], q: float) -> float | None:
    """Return the value at quantile ``q`` in [0, 1], or None if the sketch is empty.

    Raises ValueError for ``q`` outside [0, 1] and for the bad weights :func:`quantiles` rejects.
    """
    return quantiles(bins, [q])[0]


# --- dense sketches (the read side's vectorised merge) -----------------------------------------
# A dense sketch is one float64 array of DENSE_SIZE slots: slot 0 is the zero bin, slot
# ``1 + i - MIN_INDEX`` the log bin ``i`` (the slots :func:`accumulate` counts in). Many stored
# sketches merge into dense ones with one ``numpy.bincount``, which adds the weights of a slot in
# input order, exactly as :func:`merge` does, so the merged weights are bit-for-bit the same.

DENSE_SIZE: Final[int] = MAX_INDEX - MIN_INDEX + 2


def dense_slot(i: int) -> int:
    """Return the dense slot of bin index ``i``.

    Raises ValueError if ``i`` is neither ZERO_INDEX nor in [MIN_INDEX, MAX_INDEX].
    """
    if i == ZERO_INDEX:
        return 0
    if not MIN_INDEX <= i <= MAX_INDEX:
        raise ValueError(f"bin index {i} is outside [{MIN_INDEX}, {MAX_INDEX}]")
    return 1 + i - MIN_INDEX


def dense_bin(slot: int) -> int:
    """Return the bin index of a dense slot (the inverse of :func:`dense_slot`)."""
    return ZERO_INDEX if slot == 0 else slot - 1 + MIN_INDEX


def dense_quantiles(weights: npt.NDArray[np.float64], qs: Sequence[float]) -> list[float | None]:
    """Return the value at each quantile of a dense sketch: the same rule, and the same
    answers, as :func:`quantiles` of the sparse sketch holding the same bins.

    Raises ValueError for a quantile outside [0, 1], or a negative, NaN or infinite weight.
    """
    for q in qs:
        if not 0.0 <= q <= 1.0:  # also rejects NaN
            raise ValueError(f"quantile {q!r} is not between 0 and 1")
    present = np.flatnonzero(weights)
    if not present.size:
        return [None for _ in qs]
    kept = weights[present]
    if not bool(np.all((kept > 0.0) & (kept < math.inf))):
        raise ValueError("sketch weights must be finite and non-negative")
    cumulative = np.cumsum(kept)  # sequential, like itertools.accumulate
    total = float(cumulative[-1])
    last = present.size - 1
    ranks = np.searchsorted(cumulative, [q * (total - 1.0) for q in qs], side="right")
    return [bin_value(dense_bin(int(present[min(int(rank), last)]))) for rank in ranks]
