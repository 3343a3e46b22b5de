"""The v1 wire schema: round trips, strict validation and garbage that never escapes as anything
but an EventError."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmtap import events
from llmtap.events import CallEvent, EventError, InvalidEvent, MalformedEvent, RollupEvent

names = st.text(min_size=1, max_size=40)
labels = st.text(max_size=40)
counts = st.integers(min_value=0, max_value=2**40)
seconds = st.floats(min_value=0, max_value=1e5, allow_nan=False)


@st.composite
def call_events(draw: st.DrawFn) -> CallEvent:
    start = draw(st.floats(min_value=0, max_value=4e9, allow_nan=False))
    latency = draw(seconds)
    return CallEvent(
        v=1,
        call_id=draw(names),
        producer_id=draw(names),
        backend=draw(names),
        model_name=draw(names),
        start_time=start,
        end_time=start + latency,
        latency=latency,
        success=draw(st.booleans()),
        sample_rate=draw(st.floats(min_value=1e-6, max_value=1.0)),
        reason=draw(st.sampled_from(events.REASONS)),
        session_id=draw(st.none() | labels),
        tenant=draw(st.none() | labels),
        ttft=draw(st.none() | seconds),
        input_tokens=draw(counts),
        output_tokens=draw(counts),
        reasoning_tokens=draw(counts),
        estimated_cost_usd=draw(st.none() | st.floats(min_value=0, max_value=1e6)),
        retry_count=draw(st.integers(0, 100)),
        tags=draw(st.dictionaries(labels, labels, max_size=5)),
    )


@st.composite
def rollup_events(draw: st.DrawFn) -> RollupEvent:
    start = draw(st.floats(min_value=0, max_value=4e9, allow_nan=False))
    rows = draw(
        st.lists(
            st.builds(
                events.RollupRow,
                backend=names,
                model=names,
                session=st.none() | labels,
                tenant=st.none() | labels,
                calls=counts,
                errors=counts,
                input_tokens=counts,
                cost_nanousd=counts,
            ),
            max_size=5,
        )
    )
    return RollupEvent(
        v=1,
        producer_id=draw(names),
        seq=draw(counts),
        window_start=start,
        window_end=start + draw(seconds),
        rows=rows,
        stats=events.ProducerStats(total_calls=draw(counts), dropped_events=draw(counts)),
    )


@given(call_events() | rollup_events())
def test_round_trip(event: CallEvent | RollupEvent) -> None:
    """Every valid event decodes back to an equal event."""
    assert events.decode(events.encode(event)) == event


@given(st.lists(call_events() | rollup_events(), min_size=1, max_size=8))
def test_batch_round_trip(batch: list[CallEvent | RollupEvent]) -> None:
    """A 'b' entry decodes into the same events, in order."""
    decoded = events.decode_entry({b"b": events.encode_batch(batch)})
    assert decoded == batch


@given(st.binary(max_size=300))
def test_garbage_bytes_raise_event_error(raw: bytes) -> None:
    """Arbitrary bytes either decode into a valid event or raise an EventError with the bytes."""
    try:
        events.decode(raw)
    except EventError as exc:
        assert exc.raw == raw
        assert exc.reason


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_like)
def test_garbage_msgpack_is_invalid_not_a_crash(value: object) -> None:
    """Well-formed msgpack of the wrong shape raises InvalidEvent, never another exception."""
    with pytest.raises(InvalidEvent):
        events.decode(msgpack.packb(value))


def _good_call(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "v": 1,
        "t": "call",
        "call_id": "c1",
        "producer_id": "p",
        "backend": "openai",
        "model_name": "gpt-4o",
        "start_time": 1.0,
        "end_time": 2.0,
        "latency": 1.0,
        "success": True,
        "sample_rate": 0.1,
        "reason": "sampled",
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"v": 2}, "$.v"),
        ({"t": "span"}, "$.t"),
        ({"latency": math.nan}, "$.latency"),
        ({"latency": math.inf}, "$.latency"),
        ({"input_tokens": -1}, "$.input_tokens"),
        ({"input_tokens": "12"}, "$.input_tokens"),
        ({"model_name": "x" * 10_000}, "$.model_name"),
        ({"sample_rate": 0.0}, "$.sample_rate"),
        ({"reason": "because"}, "$.reason"),
        ({"end_time": 0.5}, "end_time is before start_time"),
    ],
)
def test_invalid_fields_are_named(changes: dict[str, object], fragment: str) -> None:
    """Each schema violation raises InvalidEvent whose reason names the offending field."""
    raw = msgpack.packb(_good_call(**changes))
    with pytest.raises(InvalidEvent) as info:
        events.decode(raw)
    assert fragment in info.value.reason
    assert info.value.raw == raw


def test_missing_field_is_named() -> None:
    """A required field that is absent is reported by name."""
    body = _good_call()
    del body["model_name"]
    with pytest.raises(InvalidEvent, match="model_name"):
        events.decode(msgpack.packb(body))


def test_not_msgpack_is_malformed() -> None:
    """Bytes that are not msgpack raise MalformedEvent."""
    with pytest.raises(MalformedEvent):
        events.decode(b"\xc1\xc1\xc1")


def test_bad_event_in_batch_spoils_only_itself() -> None:
    """One invalid map in a 'b' array yields an error in its place and keeps its neighbours."""
    good = msgpack.packb(_good_call())
    bad = msgpack.packb(_good_call(v=9))
    batch = b"\x93" + good + bad + good  # a 3-element array of raw maps
    decoded = events.decode_entry({b"b": batch})
    assert isinstance(decoded[0], CallEvent)
    assert isinstance(decoded[1], InvalidEvent) and decoded[1].raw == bad
    assert isinstance(decoded[2], CallEvent)


def test_entry_without_known_field_is_malformed() -> None:
    """An entry with neither 'e' nor 'b' is one MalformedEvent."""
    (result,) = events.decode_entry({b"x": b"1"})
    assert isinstance(result, MalformedEvent)


def test_absent_latency_is_end_minus_start() -> None:
    """A call event without latency (the documented wire format) gets end_time - start_time,
    and keeps it through a round trip; whole floats sent as integers are accepted."""
    body = _good_call(start_time=10, end_time=12.5)
    del body["latency"]
    decoded = events.decode(msgpack.packb(body))
    assert isinstance(decoded, CallEvent)
    assert decoded.latency == 2.5
    assert events.decode(events.encode(decoded)) == decoded
    (batched,) = events.decode_entry({b"b": msgpack.packb([body])})
    assert batched == decoded


def test_sent_latency_wins_over_the_timestamps() -> None:
    """A latency the producer measured (monotonic clock) is kept as sent."""
    decoded = events.decode(msgpack.packb(_good_call(latency=0.75)))
    assert isinstance(decoded, CallEvent)
    assert decoded.latency == 0.75


def test_derived_latency_out_of_range_is_invalid() -> None:
    """Timestamps further apart than any latency allowed are rejected, not stored."""
    body = _good_call(start_time=0.0, end_time=1e9)
    del body["latency"]
    with pytest.raises(InvalidEvent, match="latency"):
        events.decode(msgpack.packb(body))
