"""The compact form of call events (``t = "calls"`` groups in ``b`` arrays): round trips, per-call
validation and dead letters, entries of the old form still decoded, and the JSON Schema."""

from __future__ import annotations

from typing import Any

import jsonschema
import msgpack
import msgspec
import pytest
from hypothesis import given

from llmtap import events, keys
from llmtap.events import CallEvent, InvalidEvent
from tests import factories
from tests.test_events import call_events


def _group(calls: list[CallEvent]) -> bytes:
    """One group item holding ``calls`` (which must share their base)."""
    base, _ = events.split_call(calls[0])
    return events.encode_group(events.encode_base(base), [events.split_call(c)[1] for c in calls])


def _decode(*items: bytes) -> list[Any]:
    return events.decode_entry({keys.FIELD_BATCH: events.join_batch(list(items))})


@given(call_events())
def test_a_call_round_trips_through_a_group(event: CallEvent) -> None:
    """Any call event, split into base and row and packed as a group, decodes equal to itself."""
    assert _decode(_group([event])) == [event]


def test_rows_share_their_base_and_keep_their_order() -> None:
    """Every row of a group becomes one call with the base's fields, in row order, mixed with
    plain maps in the same array."""
    calls = [
        factories.call_event(call_id=f"c{i}", latency=0.1 * i, input_tokens=i, session_id="s")
        for i in range(1, 6)
    ]
    plain = factories.call_event(call_id="plain", success=False, error_type="Timeout")
    decoded = _decode(events.encode(plain), _group(calls), events.encode(factories.rollup_event()))
    assert decoded[0] == plain
    assert decoded[1:6] == calls
    assert isinstance(decoded[6], events.RollupEvent)


def test_a_short_row_takes_the_defaults() -> None:
    """A row that stops after latency has no tokens, no cost and end_time = start + latency."""
    base = events.encode_base(events.split_call(factories.call_event())[0])
    (event,) = _decode(events.encode_group(base, [("c9", 100.0, 2.5)]))
    assert (event.call_id, event.end_time, event.input_tokens) == ("c9", 102.5, 0)
    assert event.estimated_cost_usd is None and event.ttft is None


def test_a_bad_row_dead_letters_only_its_call() -> None:
    """A negative latency in one row gives one InvalidEvent whose raw bytes are that row alone
    (as a group with the same base); the other rows decode."""
    good = factories.call_event()
    base = events.encode_base(events.split_call(good)[0])
    rows = [events.split_call(good)[1], ("bad", 100.0, -1.0), ("c3", 100.0, 1.0)]
    decoded = _decode(events.encode_group(base, rows))
    assert decoded[0] == good and decoded[2].call_id == "c3"
    error = decoded[1]
    assert isinstance(error, InvalidEvent) and "$[2]" in error.reason
    assert msgpack.unpackb(error.raw)["rows"] == [["bad", 100.0, -1.0]]


@pytest.mark.parametrize(
    ("base_changes", "group_changes"),
    [({"sample_rate": 0.0}, {}), ({"backend": ""}, {}), ({}, {"v": 2}), ({}, {"rows": []})],
)
def test_a_bad_base_or_version_spoils_the_group(
    base_changes: dict[str, Any], group_changes: dict[str, Any]
) -> None:
    """A group whose base or version is invalid is one InvalidEvent; its neighbours decode."""
    base = msgspec.to_builtins(events.split_call(factories.call_event())[0])
    base.update(base_changes)
    group = {"t": "calls", "v": 1, "base": base, "rows": [["c1", 100.0, 1.0]]}
    group.update(group_changes)
    neighbour = factories.call_event(call_id="n")
    decoded = _decode(msgpack.packb(group), events.encode(neighbour))
    assert isinstance(decoded[0], InvalidEvent)
    assert decoded[1:] == [neighbour]


def test_entries_of_the_old_form_still_decode() -> None:
    """``e`` maps and ``b`` arrays of maps (what older producers wrote) decode as before."""
    call, rollup = factories.call_event(), factories.rollup_event()
    assert events.decode_entry({keys.FIELD_EVENT: events.encode(call)}) == [call]
    assert events.decode_entry({keys.FIELD_BATCH: events.encode_batch([call, rollup])}) == [
        call,
        rollup,
    ]


def test_an_end_past_the_timestamp_range_is_invalid() -> None:
    """start_time + latency beyond the timestamp maximum is rejected, not stored."""
    base = events.encode_base(events.split_call(factories.call_event())[0])
    (error,) = _decode(events.encode_group(base, [("c1", 1e11, 100.0)]))
    assert isinstance(error, InvalidEvent)


# --- the JSON Schema ------------------------------------------------------------------------------


def _batch_validator() -> jsonschema.Draft202012Validator:
    schema = events.json_schema()
    return jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/batch"})


def test_the_schema_row_is_the_codec_row() -> None:
    """``$defs/call_row`` lists ROW_FIELDS in order, with the call's schema for each, and
    requires the three the codec requires."""
    schema = events.json_schema()
    row, call = schema["$defs"]["call_row"], schema["$defs"]["call"]["properties"]
    assert row["prefixItems"] == [call[name] for name in events.ROW_FIELDS]
    fields = msgspec.structs.fields(events.CallRow)
    assert [f.name for f in fields] == list(events.ROW_FIELDS)
    assert row["minItems"] == sum(f.required for f in fields)
    base_props = set(schema["$defs"]["call_base"]["properties"])
    assert base_props | set(events.ROW_FIELDS) | {"end_time", "v", "t"} == set(call)


def test_groups_the_codec_writes_validate_and_bad_ones_do_not() -> None:
    """A group from the codec passes the schema; a negative latency or a missing base fails."""
    calls = [factories.call_event(call_id=f"c{i}", ttft=0.1) for i in range(3)]
    value = msgpack.unpackb(events.join_batch([_group(calls)]))
    validator = _batch_validator()
    validator.validate(value)
    bad_row = [{**value[0], "rows": [["c1", 100.0, -1.0]]}]
    no_base = [{k: v for k, v in value[0].items() if k != "base"}]
    assert not validator.is_valid(bad_row)
    assert not validator.is_valid(no_base)
