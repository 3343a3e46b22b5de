"""Tests of the log-bucket quantile sketch: accuracy, merging, range and edge cases."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pytest
from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtap.analyzers import sketch
from llmtap.analyzers.sketch import (
    MAX_INDEX,
    MAX_VALUE,
    MIN_INDEX,
    MIN_VALUE,
    RELATIVE_ACCURACY,
    ZERO_INDEX,
    accumulate,
    bin_value,
    index,
    indices,
    merge,
    quantile,
    quantiles,
)

Array = npt.NDArray[np.float64]

# Only the rounding of one log/exp at a bin edge, not a looser accuracy bound.
BOUND = RELATIVE_ACCURACY * (1 + 1e-9)
QS = (0.5, 0.95, 0.99)
N = 1_000_000


def _lognormal(rng: np.random.Generator, n: int) -> Array:
    return rng.lognormal(mean=math.log(0.8), sigma=1.0, size=n)


def _pareto(rng: np.random.Generator, n: int) -> Array:
    return (rng.pareto(1.5, size=n) + 1.0) * 0.2


def _bimodal(rng: np.random.Generator, n: int) -> Array:
    # Cache hits around 40 ms and full generations around 6 s.
    fast = rng.lognormal(mean=math.log(0.04), sigma=0.3, size=n)
    slow = rng.lognormal(mean=math.log(6.0), sigma=0.5, size=n)
    return np.where(rng.random(n) < 0.7, fast, slow)


DISTRIBUTIONS: dict[str, Callable[[np.random.Generator, int], Array]] = {
    "lognormal": _lognormal,
    "pareto": _pareto,
    "bimodal": _bimodal,
}


def _tail_weights(values: Array) -> Array:
    """Weights 1/sample_rate: slow calls (top 10%) kept at rate 1.0, the rest at rate 0.1."""
    rates = np.where(values > np.quantile(values, 0.9), 1.0, 0.1)
    return 1.0 / rates


def exact_quantiles(values: Array, weights: Array, qs: Sequence[float]) -> list[float]:
    """The exact order statistics the sketch's rank definition selects, one per quantile.

    The sketch returns the first bin whose cumulative weight exceeds q * (W - 1) (DDSketch's
    definition). Applied to the sorted samples instead of bins this picks one sample; for unit
    weights it is ``np.quantile(values, q, method="lower")``, and for integer weights the same
    on ``np.repeat(values, weights)`` (both checked below). The sketch's answer is the bin of
    this sample, hence within 1% of it.
    """
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    ranks = np.asarray(qs) * (cumulative[-1] - 1.0)
    positions = np.minimum(np.searchsorted(cumulative, ranks, side="right"), values.size - 1)
    return [float(value) for value in values[order][positions]]


def _relative_error(estimate: float | None, exact: float) -> float:
    assert estimate is not None
    return abs(estimate - exact) / exact


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.95, 0.99, 1.0])
def test_reference_quantile_is_numpy_lower_on_repeated_samples(q: float) -> None:
    """The reference quantile equals numpy's "lower" method, with weights as repetitions."""
    rng = np.random.default_rng(7)
    values = _lognormal(rng, 5_000)
    weights = rng.choice([1.0, 2.0, 10.0], size=values.size)
    repeated = np.repeat(values, weights.astype(np.int64))
    assert exact_quantiles(values, np.ones_like(values), [q]) == [
        np.quantile(values, q, method="lower")
    ]
    assert exact_quantiles(values, weights, [q]) == [np.quantile(repeated, q, method="lower")]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_quantiles_within_one_percent_on_a_million_samples(name: str, weighted: bool) -> None:
    """p50, p95 and p99 of 1M samples are within 1% of the exact weighted quantiles."""
    rng = np.random.default_rng(20261127)
    values = DISTRIBUTIONS[name](rng, N)
    weights = _tail_weights(values) if weighted else np.ones_like(values)
    estimates = quantiles(accumulate(values, weights), QS)
    exacts = exact_quantiles(values, weights, QS)
    for q, estimate, exact in zip(QS, estimates, exacts, strict=True):
        assert _relative_error(estimate, exact) <= BOUND, (q, estimate, exact)


def test_weighted_sketch_equals_sketch_of_repeated_samples() -> None:
    """Weighting a value by 1/sample_rate is the same as adding it that many times."""
    rng = np.random.default_rng(11)
    values = _bimodal(rng, 20_000)
    weights = 1.0 / rng.choice([0.1, 0.5, 1.0], size=values.size)
    repeated = np.repeat(values, np.rint(weights).astype(np.int64))
    assert accumulate(values, weights) == accumulate(repeated, np.ones_like(repeated))


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_agrees_with_ddsketch_package(name: str) -> None:
    """Weighted quantiles match DDSketch(relative_accuracy=0.01) within 2% on the same data.

    Both use the same bins and rank definition, so in practice they agree to ~1e-13.
    """
    rng = np.random.default_rng(3)
    values = DISTRIBUTIONS[name](rng, 200_000)
    weights = _tail_weights(values)
    reference = DDSketch(relative_accuracy=RELATIVE_ACCURACY)
    for value, weight in zip(values.tolist(), weights.tolist(), strict=True):
        reference.add(value, weight)
    qs = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]
    ours = quantiles(accumulate(values, weights), qs)
    for q, estimate in zip(qs, ours, strict=True):
        theirs = reference.get_quantile_value(q)
        assert theirs is not None
        assert _relative_error(estimate, theirs) <= 0.02, (q, estimate, theirs)


# --- merging (hypothesis) -------------------------------------------------------------------

# 1/sample_rate for rates 1, 0.5, 0.25 and 0.1: integers, so sums are exact in any order.
_weights = st.sampled_from([1.0, 2.0, 4.0, 10.0])
_values = st.floats(min_value=0.0, max_value=2 * MAX_VALUE, allow_nan=False)
_batches = st.lists(st.tuples(_values, _weights), max_size=50)


def _sketch_of(batch: list[tuple[float, float]]) -> dict[int, float]:
    values = np.array([value for value, _ in batch], dtype=np.float64)
    weights = np.array([weight for _, weight in batch], dtype=np.float64)
    return accumulate(values, weights)


@given(_batches, _batches)
def test_merge_of_sketches_equals_sketch_of_concatenation(
    a: list[tuple[float, float]], b: list[tuple[float, float]]
) -> None:
    """merge(accumulate(a), accumulate(b)) == accumulate(a ++ b)."""
    assert merge(_sketch_of(a), _sketch_of(b)) == _sketch_of(a + b)


@given(_batches, _batches)
def test_merge_is_commutative(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> None:
    """The order of two sketches does not change their merge."""
    assert merge(_sketch_of(a), _sketch_of(b)) == merge(_sketch_of(b), _sketch_of(a))


@given(_batches, _batches, _batches)
def test_merge_is_associative(
    a: list[tuple[float, float]], b: list[tuple[float, float]], c: list[tuple[float, float]]
) -> None:
    """Grouping does not change a merge, and merging several at once is the same."""
    sa, sb, sc = _sketch_of(a), _sketch_of(b), _sketch_of(c)
    assert merge(merge(sa, sb), sc) == merge(sa, merge(sb, sc)) == merge(sa, sb, sc)


@given(
    st.lists(st.tuples(_values, st.floats(min_value=1.0, max_value=1e4)), min_size=1, max_size=50),
    st.integers(min_value=0, max_value=50),
)
def test_merge_with_fractional_weights_matches_up_to_rounding(
    batch: list[tuple[float, float]], cut: int
) -> None:
    """With any weights, merged halves equal the whole up to float rounding of the sums."""
    merged = merge(_sketch_of(batch[:cut]), _sketch_of(batch[cut:]))
    whole = _sketch_of(batch)
    assert merged.keys() == whole.keys()
    assert all(math.isclose(merged[key], whole[key], rel_tol=1e-12) for key in whole)


def test_merge_of_nothing_is_empty() -> None:
    """merge() with no sketches, or with empty ones, is the empty sketch."""
    assert merge() == {}
    assert merge({}, {}) == {}


# --- the index mapping ---------------------------------------------------------------------


@settings(max_examples=300)
@given(st.floats(min_value=MIN_VALUE, max_value=MAX_VALUE))
def test_every_value_in_range_is_reported_within_one_percent(value: float) -> None:
    """bin_value(index(v)) is within 1% of v for every v in [MIN_VALUE, MAX_VALUE]."""
    assert abs(bin_value(index(value)) - value) <= BOUND * value


@given(st.lists(_values, max_size=50))
def test_index_and_indices_agree(values: list[float]) -> None:
    """The vectorized indices() gives the scalar index() of each value, as int64."""
    result = indices(np.array(values, dtype=np.float64))
    assert result.dtype == np.int64
    assert result.tolist() == [index(value) for value in values]


@given(_values, _values)
def test_index_is_monotonic(a: float, b: float) -> None:
    """A larger value never lands in a lower bin, so bins sort like values."""
    low, high = sorted((a, b))
    assert index(low) <= index(high)


def test_every_bin_from_100_microseconds_to_one_hour_is_distinct() -> None:
    """100 µs to 1 h spans ~870 consecutive, distinct bins, each reporting its own value."""
    low, high = index(1e-4), index(3600.0)
    assert (low, high) == (MIN_INDEX, index(3600.0))
    assert high - low == math.ceil(math.log(3600.0 / 1e-4) / math.log(sketch.GAMMA))
    for i in range(low, high + 1):
        assert index(bin_value(i)) == i


def test_ten_minute_call_does_not_overflow() -> None:
    """A ten-minute call keeps the 1% bound, far below the top bin."""
    assert index(600.0) < MAX_INDEX
    assert abs(bin_value(index(600.0)) - 600.0) <= BOUND * 600.0


def test_ddsketch_uses_the_same_bin_keys() -> None:
    """Our index is the key of ddsketch's LogarithmicMapping, so the bins line up."""
    mapping = LogarithmicMapping(RELATIVE_ACCURACY)  # what DDSketch(...) uses
    rng = np.random.default_rng(5)
    values = np.exp(rng.uniform(math.log(MIN_VALUE), math.log(MAX_VALUE), size=20_000))
    ours = indices(values).tolist()
    theirs = [mapping.key(value) for value in values.tolist()]
    # Float rounding of two log formulas (and numpy's per-CPU log) may split a bin-edge value.
    assert sum(a != b for a, b in zip(ours, theirs, strict=True)) <= 2


# --- edge cases ----------------------------------------------------------------------------


def test_empty_sketch_has_no_quantiles() -> None:
    """An empty sketch, or one whose bins all weigh zero, answers None."""
    assert quantile({}, 0.5) is None
    assert quantiles({}, [0.0, 0.5, 1.0]) == [None, None, None]
    assert quantile({index(1.0): 0.0}, 0.5) is None
    assert accumulate(np.array([]), np.array([])) == {}


def test_single_value_is_every_quantile() -> None:
    """With one value, every quantile is that value within 1%."""
    bins = accumulate(np.array([2.5]), np.array([10.0]))
    for estimate in quantiles(bins, [0.0, 0.5, 0.99, 1.0]):
        assert _relative_error(estimate, 2.5) <= BOUND


def test_zero_has_its_own_bin_reported_as_zero() -> None:
    """Zero goes to ZERO_INDEX, reported as exactly 0.0 and sorted below every other bin."""
    assert index(0.0) == ZERO_INDEX
    assert bin_value(ZERO_INDEX) == 0.0
    bins = accumulate(np.array([0.0, 0.0, 1e-9, 1.0]), np.ones(4))
    assert bins == {ZERO_INDEX: 2.0, MIN_INDEX: 1.0, index(1.0): 1.0}
    assert quantiles(bins, [0.0, 0.5]) == [0.0, 0.0]


@pytest.mark.parametrize("value", [5e-324, 1e-9, 1e-6, 5e-5, MIN_VALUE])
def test_values_below_100_microseconds_share_the_lowest_bin(value: float) -> None:
    """Positive values up to MIN_VALUE are reported as about 100 µs (absolute error < 100 µs)."""
    assert index(value) == MIN_INDEX
    reported = quantile(accumulate(np.array([value]), np.array([1.0])), 0.5)
    assert reported == bin_value(MIN_INDEX)
    assert abs(bin_value(MIN_INDEX) - MIN_VALUE) <= BOUND * MIN_VALUE


@pytest.mark.parametrize("value", [3600.0, 86_400.0, 500_000.0, MAX_VALUE])
def test_values_above_one_hour_keep_the_bound_up_to_max_value(value: float) -> None:
    """Values from one hour up to one week are reported within 1%."""
    assert index(value) <= MAX_INDEX
    assert abs(bin_value(index(value)) - value) <= BOUND * value


@pytest.mark.parametrize("value", [MAX_VALUE * 1.5, 1e12, 1e300])
def test_values_above_max_value_clamp_to_the_top_bin(value: float) -> None:
    """Values above MAX_VALUE land in the top bin, reported as about one week."""
    assert index(value) == MAX_INDEX
    assert abs(bin_value(MAX_INDEX) - MAX_VALUE) <= BOUND * MAX_VALUE


def test_q0_and_q1_are_the_lowest_and_highest_bins() -> None:
    """q=0 reports the smallest value's bin, q=1 the largest's."""
    values = np.array([0.01, 0.5, 3.0, 42.0])
    bins = accumulate(values, np.array([10.0, 1.0, 10.0, 1.0]))
    assert quantiles(bins, [0.0, 1.0]) == [bin_value(index(0.01)), bin_value(index(42.0))]


def test_quantiles_match_one_quantile_at_a_time() -> None:
    """quantiles() gives the same answers as repeated quantile(), in the order asked."""
    rng = np.random.default_rng(9)
    bins = accumulate(_pareto(rng, 10_000), np.ones(10_000))
    qs = [0.99, 0.0, 0.5, 1.0, 0.25]
    assert quantiles(bins, qs) == [quantile(bins, q) for q in qs]


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan, math.inf])
def test_bad_quantile_raises(q: float) -> None:
    """A quantile outside [0, 1] raises ValueError, even on an empty sketch."""
    with pytest.raises(ValueError, match="quantile"):
        quantile({index(1.0): 1.0}, q)
    with pytest.raises(ValueError, match="quantile"):
        quantiles({}, [0.5, q])


@pytest.mark.parametrize("value", [-1.0, -0.0001, math.nan, math.inf])
def test_bad_value_raises(value: float) -> None:
    """Negative, NaN and infinite values raise ValueError."""
    with pytest.raises(ValueError, match="values"):
        index(value)
    with pytest.raises(ValueError, match="values"):
        accumulate(np.array([1.0, value]), np.ones(2))


@pytest.mark.parametrize("weight", [-1.0, math.nan, math.inf])
def test_bad_weight_raises(weight: float) -> None:
    """Negative, NaN and infinite weights raise ValueError, in a batch and in stored bins."""
    with pytest.raises(ValueError, match="weights"):
        accumulate(np.array([1.0, 2.0]), np.array([1.0, weight]))
    with pytest.raises(ValueError, match="weights"):
        quantile({index(1.0): weight}, 0.5)


def test_mismatched_weights_raise() -> None:
    """accumulate() needs one weight per value."""
    with pytest.raises(ValueError, match="weights"):
        accumulate(np.ones(3), np.ones(2))


@pytest.mark.parametrize("i", [MIN_INDEX - 1, MAX_INDEX + 1, ZERO_INDEX + 1])
def test_bin_value_outside_the_range_raises(i: int) -> None:
    """An index that no value maps to (say, a corrupt hash field) raises ValueError."""
    with pytest.raises(ValueError, match="outside"):
        bin_value(i)
