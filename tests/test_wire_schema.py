"""The wire format's JSON Schema (llmtap/schema/events.v1.json): it agrees with the codec, every
event the Python producers write validates against it, and docs/wire-format.md publishes it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import msgpack
import msgspec
import pytest
import redis

from llmtap import events, keys
from llmtap.producers.profiler import Profiler
from llmtap.settings import Settings
from llmtap.testing import Workload
from tests import factories

REPO = Path(__file__).resolve().parents[1]
STRUCTS = {
    "call": events.CallEvent,
    "rollup": events.RollupEvent,
    "rollup_row": events.RollupRow,
    "producer_stats": events.ProducerStats,
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """The schema file as the package ships it, checked against its draft's meta-schema."""
    document = events.json_schema()
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def _validator(schema: dict[str, Any], definition: str) -> jsonschema.Draft202012Validator:
    """A validator for one of the schema's ``$defs`` (``event`` for ``e``, ``batch`` for ``b``)."""
    return jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{definition}"})


def _stream_values(r: redis.Redis) -> list[tuple[bytes, Any]]:
    """Every entry of the events stream as (its field, the msgpack value unpacked)."""
    out = []
    for _id, fields in r.xrange(keys.EVENTS):
        ((field, raw),) = fields.items()
        out.append((field, msgpack.unpackb(raw)))
    return out


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_schema_names_the_codec_fields(schema: dict[str, Any], name: str) -> None:
    """Each object of the schema has the codec struct's fields, and requires the same ones.

    ``latency`` is the one field the codec can derive, so the schema does not require it.
    """
    struct = STRUCTS[name]
    definition = schema["$defs"][name]
    fields = msgspec.structs.fields(struct)
    tag = ["t"] if name in ("call", "rollup") else []
    assert set(definition["properties"]) == {f.encode_name for f in fields} | set(tag)
    required = {f.encode_name for f in fields if f.required} | set(tag)
    assert set(definition["required"]) == required
    assert "latency" not in schema["$defs"]["call"]["required"]


def test_events_the_python_producers_write_validate(
    schema: dict[str, Any], redis_url: str, r: redis.Redis
) -> None:
    """Call and rollup events in `e` and `b` entries, from the wrapper and the codec, validate."""
    Workload(3, batch_size=5).write(r, 300)
    r.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(factories.call_event(ttft=0.2))})
    r.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(factories.rollup_event())})
    profiler = Profiler(Settings(sampling_rate=1.0), redis_url=redis_url).start()
    traced = profiler.profile(backend="openai", session="s-1", tags={"team": "search"})(
        lambda: {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 12, "completion_tokens": 3}}
    )
    for _ in range(20):
        traced()
    profiler.close(timeout=5.0)
    seen: set[tuple[bytes, str]] = set()
    for field, value in _stream_values(r):
        if field == keys.FIELD_EVENT:
            _validator(schema, "event").validate(value)
            seen.add((field, value["t"]))
        else:
            _validator(schema, "batch").validate(value)
            seen.update((field, item["t"]) for item in value)
    e, b = keys.FIELD_EVENT, keys.FIELD_BATCH
    assert {(e, "call"), (e, "rollup"), (b, "call"), (b, "rollup")} <= seen


def test_an_event_without_latency_validates_and_decodes(schema: dict[str, Any]) -> None:
    """The documented minimum (no latency, whole numbers as integers) passes both checks alike."""
    body = {"v": 1, "t": "call", "call_id": "c1", "producer_id": "p", "backend": "openai",
            "model_name": "gpt-4o", "start_time": 100, "end_time": 101.5, "success": True,
            "sample_rate": 1, "reason": "sampled"}  # fmt: skip
    _validator(schema, "event").validate(body)
    decoded = events.decode(msgpack.packb(body))
    assert isinstance(decoded, events.CallEvent)
    assert decoded.latency == 1.5


@pytest.mark.parametrize(
    "changes",
    [{"v": 2}, {"t": "span"}, {"latency": -1.0}, {"input_tokens": -1}, {"sample_rate": 0}],
)
def test_schema_rejects_what_the_codec_rejects(
    schema: dict[str, Any], changes: dict[str, Any]
) -> None:
    """The schema has teeth: values the decoder dead-letters fail it too."""
    body = msgpack.unpackb(events.encode(factories.call_event()))
    body.update(changes)
    assert not _validator(schema, "event").is_valid(body)
    with pytest.raises(events.InvalidEvent):
        events.decode(msgpack.packb(body))


def test_docs_publish_the_schema_file(schema: dict[str, Any]) -> None:
    """docs/wire-format.md holds the schema file, unchanged, in a json block."""
    page = (REPO / "docs" / "wire-format.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```json\n(.*?)^```", page, flags=re.MULTILINE | re.DOTALL)
    assert any(json.loads(block) == schema for block in blocks)
