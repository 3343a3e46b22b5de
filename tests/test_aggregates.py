"""The hash-field codec: every field a worker writes decodes to what it encoded, and the field
names stay byte-for-byte those of layout version 1."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmtap import aggregates, events
from tests.factories import call_event, rollup_event

names = st.text(min_size=1, max_size=20)
kinds = st.sampled_from(aggregates.DIMENSION_KINDS)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
weights = st.floats(min_value=0.0, max_value=1e12, allow_nan=False)
bin_weights = st.floats(min_value=0.0, max_value=1e12, allow_nan=False, exclude_min=True)
bin_indexes = st.integers(min_value=-2000, max_value=2000) | st.just(aggregates.ZERO_BIN)


def test_field_names_are_those_of_layout_version_1() -> None:
    """The literal field names users read with redis-cli do not change."""
    assert aggregates.dimensions("openai", "gpt-4o", "acme", "s-1") == [
        "total", "backend:openai", "model:gpt-4o", "tenant:acme", "session:s-1",
    ]  # fmt: skip
    assert aggregates.usage_field("total", "calls") == "total|calls"
    assert aggregates.timing_field("latency", "n") == "latency:n"
    assert aggregates.timing_field(aggregates.TPS, "sum") == "tps:sum"
    assert aggregates.latency_member("openai", "gpt-4o") == '["openai", "gpt-4o"]'
    assert aggregates.session_usage_field("thread", aggregates.NO_THREAD) == "thread:-"
    assert aggregates.detail_field("model", "m", "max_input_tokens") == "model:m|max_input_tokens"
    assert aggregates.detail_field("prompt", "h", "n") == "prompt:h|n"


def test_dimensions_skip_missing_tenant_and_session() -> None:
    """A row without tenant or session counts under total, backend and model only."""
    got = aggregates.dimensions("openai", "gpt-4o", None, "")
    assert got == ["total", "backend:openai", "model:gpt-4o"]
    assert aggregates.dimensions("b", "m", "t", "s")[-2:] == ["tenant:t", "session:s"]


@given(kinds, names)
def test_a_dimension_splits_into_its_kind_and_value(kind: str, value: str) -> None:
    """Any value (colons included) comes back from its dimension field unchanged."""
    assert aggregates.split_dimension(aggregates.dimension(kind, value)) == (kind, value)


def test_total_is_its_own_kind_and_value() -> None:
    """The total dimension has no colon: kind and value are both ``total``."""
    assert aggregates.split_dimension(aggregates.TOTAL) == ("total", "total")


@given(kinds, names, st.sampled_from(aggregates.USAGE_METRICS))
def test_a_usage_field_splits_into_dimension_and_metric(kind: str, value: str, metric: str) -> None:
    """Any dimension value (``|`` and ``:`` included) and metric survive the usage field."""
    dim = aggregates.dimension(kind, value)
    assert aggregates.split_usage_field(aggregates.usage_field(dim, metric)) == (dim, metric)


@given(st.dictionaries(st.text(max_size=10), st.integers(min_value=-(2**62), max_value=2**62)))
def test_counts_decode_from_bytes(counts: dict[str, int]) -> None:
    """A cost or usage hash as redis-py returns it (bytes) decodes to the same integers."""
    raw = {k.encode(): str(v).encode() for k, v in counts.items()}
    assert aggregates.decode_counts(raw) == counts


timing_stats = st.fixed_dictionaries(
    {
        "n": st.integers(min_value=0, max_value=2**40),
        "w": weights,
        "sum": weights,
        "min": finite,
        "max": finite,
        "bins": st.dictionaries(bin_indexes, bin_weights),
    }
)


@given(st.sampled_from(aggregates.TIMINGS), timing_stats, timing_stats)
def test_a_timing_decodes_to_what_the_latency_worker_wrote(
    timing: str, mine: dict[str, object], other: dict[str, object]
) -> None:
    """Count, weight, sum and extremes of one timing (from the hash) and its bins (from its
    packed sketch) come back exactly, and another timing's fields in the same hash do not leak
    into it."""
    fields = {**_encode("tps", other), **_encode(timing, mine)}
    for neighbour in aggregates.TIMINGS:
        if neighbour != timing:
            fields.update(_encode(neighbour, other))
    assert isinstance(mine["bins"], dict)
    got = aggregates.decode_timing(fields, timing, aggregates.encode_sketch(mine["bins"]))
    assert (got.n, got.w, got.total, got.low, got.high, got.bins) == (
        mine["n"], mine["w"], mine["sum"], mine["min"], mine["max"], mine["bins"],
    )  # fmt: skip
    assert aggregates.decode_tps(fields) == (other["sum"], other["w"])


def _encode(timing: str, stats: dict[str, object]) -> dict[str, str]:
    return {aggregates.timing_field(timing, k): repr(v) for k, v in stats.items() if k != "bins"}


@given(st.dictionaries(bin_indexes, bin_weights))
def test_a_packed_sketch_decodes_to_its_bins(bins: dict[int, float]) -> None:
    """A packed sketch holds exactly the bins it was built from: the zero bin in its own slot,
    the log bins from the lowest one on (the format the commit script writes)."""
    packed = aggregates.encode_sketch(bins)
    assert aggregates.decode_sketch(packed) == bins
    logs = [i for i in bins if i != aggregates.ZERO_BIN]
    assert len(packed) == 8 * (2 + (max(logs) - min(logs) + 1 if logs else 0))


def test_a_missing_or_malformed_packed_sketch() -> None:
    """No key decodes to no bins; bytes that are not a packed sketch raise ValueError."""
    assert aggregates.decode_sketch(None) == {}
    for bad in (b"\x00" * 7, b"\x00" * 8, b"\x00" * 17):
        with pytest.raises(ValueError, match="packed sketch"):
            aggregates.decode_sketch(bad)


def test_an_absent_timing_decodes_empty() -> None:
    """A hash without the timing gives zero counts and infinite extremes."""
    got = aggregates.decode_timing({"latency:n": "3"}, "ttft")
    assert (got.n, got.w, got.bins) == (0, 0.0, {})
    assert got.low == math.inf and got.high == -math.inf


@given(names, names)
def test_a_latency_member_names_its_backend_and_model(backend: str, model: str) -> None:
    """The latency-index member decodes (from bytes too) to its (backend, model)."""
    member = aggregates.latency_member(backend, model)
    assert aggregates.decode_latency_member(member.encode()) == (backend, model)


session_usage = st.fixed_dictionaries(
    {kind: st.dictionaries(names, st.integers(1, 10**6)) for kind in aggregates.SESSION_USAGE_KINDS}
)


@given(
    st.dictionaries(st.sampled_from(aggregates.SESSION_METRICS), st.integers(0, 2**50)),
    session_usage,
    st.integers(0, 10**6),
    finite,
    st.one_of(st.none(), st.floats(0, 4e9)),
)  # fmt: skip
def test_a_session_summary_decodes_to_what_the_sessions_worker_wrote(
    counts: dict[str, int],
    usage: dict[str, dict[str, int]],
    n_events: int,
    latency_sum: float,
    first_seen: float | None,
) -> None:
    """Counters, event counts per backend/model/thread, latency sum and times come back."""
    raw: dict[str, str] = {m: str(v) for m, v in counts.items()}
    for kind, values in usage.items():
        raw.update({aggregates.session_usage_field(kind, v): str(c) for v, c in values.items()})
    raw.update({"events": str(n_events), "latency_sum": repr(latency_sum)})
    if first_seen is not None:
        raw["first_seen"] = raw["last_seen"] = repr(first_seen)
    got = aggregates.decode_session({k.encode(): v.encode() for k, v in raw.items()})
    assert got.counts == {m: counts.get(m, 0) for m in aggregates.SESSION_METRICS}
    assert got.usage == {kind: dict(sorted(v.items())) for kind, v in usage.items()}
    assert (got.events, got.failed_events, got.latency_sum) == (n_events, 0, latency_sum)
    assert got.first_seen == first_seen and got.last_seen == first_seen


@given(
    st.lists(
        st.tuples(st.sampled_from(["model", "prompt"]), names, st.sampled_from(["w", "max_x"]),
                  weights),
        max_size=30,
    )
)  # fmt: skip
def test_call_details_merge_sums_and_maxima(items: list[tuple[str, str, str, float]]) -> None:
    """Merged over several days' hashes, each metric is summed, and ``max*`` metrics maxed."""
    hashes = [
        {aggregates.detail_field(kind, name, metric).encode(): repr(value).encode()}
        for kind, name, metric, value in items
    ]
    got = aggregates.merge_call_details(hashes)
    for kind, table in (("model", got.models), ("prompt", got.prompts)):
        mine = [(name, metric, value) for k, name, metric, value in items if k == kind]
        assert set(table) == {name for name, _, _ in mine}
        for name, row in table.items():
            values = [(m, v) for n, m, v in mine if n == name]
            if any(m == "w" for m, _ in values):
                assert row["w"] == sum(v for m, v in values if m == "w")
            if any(m == "max_x" for m, _ in values):
                assert row["max_x"] == max(v for m, v in values if m == "max_x")


def test_call_details_ignore_unknown_subjects() -> None:
    """A field of neither a model nor a prompt is not merged anywhere."""
    got = aggregates.merge_call_details([{b"tenant:t|w": b"1.0", b"model:m|w": b"2.0"}])
    assert got.models == {"m": {"w": 2.0}} and got.prompts == {}


def _call(**fields: object) -> events.CallEvent:
    defaults = {"call_id": "c1", "start_time": 10.0, "end_time": 11.5, "latency": 1.5,
                "session_id": "s", "tenant": "t", "estimated_cost_usd": 0.25}  # fmt: skip
    return call_event(**{**defaults, **fields})


def test_members_decode_to_the_call_they_describe() -> None:
    """Top-calls and timeline members are compact JSON that decode to the call's details."""
    call = _call()
    top = aggregates.decode_member(aggregates.top_member(call).encode())
    assert top == {"call_id": "c1", "backend": "openai", "model": "gpt-4o", "session": "s",
                   "tenant": "t", "cost_usd": 0.25, "start_time": 10.0}  # fmt: skip
    line = aggregates.decode_member(aggregates.timeline_member(call))
    assert (line["timestamp"], line["latency"], line["cost"]) == (10.0, 1.5, 0.25)
    assert " " not in aggregates.top_member(call)


@given(st.lists(st.integers(min_value=0, max_value=2**53), min_size=5, max_size=5))
def test_producer_statistics_round_trip(values: list[int]) -> None:
    """The statistics a rollup writes to its producer hash read back as the same integers."""
    stats = events.ProducerStats(
        total_calls=values[0], profiled_calls=values[1], dropped_events=values[2],
        unpriced_calls=values[3], bad_runtime_settings=values[4],
    )  # fmt: skip
    rollup = rollup_event(window_start=0.0, window_end=5.5, stats=stats)
    fields = aggregates.producer_fields(rollup)
    assert fields["window_end"] == "5.5"
    hmget = [fields[name].encode() for name in aggregates.PRODUCER_STATS]
    assert aggregates.decode_producer_stats(hmget) == dict(
        zip(aggregates.PRODUCER_STATS, values[:4], strict=True)
    )
    assert aggregates.decode_producer_stats([None] * 4) == dict.fromkeys(
        aggregates.PRODUCER_STATS, 0
    )
