"""The wire format's JSON Schema (llmtap/schema/events.v1.json): it agrees with the codec, every
event the Python producers write validates against it, docs/wire-format.md publishes it, and a
producer in JavaScript that follows it (tests/node/produce.mjs) is counted exactly."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
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
from tests.consumer_helpers import DAY, burst, day_totals, latency_events

REPO = Path(__file__).resolve().parents[1]
NODE_DIR = REPO / "tests" / "node"
NPM_TIMEOUT_S = 300
STRUCTS = {
    "call": events.CallEvent,
    "rollup": events.RollupEvent,
    "rollup_row": events.RollupRow,
    "producer_stats": events.ProducerStats,
    "call_base": events.CallBase,
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
    """Call and rollup events in `e` and `b` entries, and the wrapper's call groups, validate."""
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
    assert {(e, "call"), (e, "rollup"), (b, "call"), (b, "rollup"), (b, "calls")} <= seen


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


# --- a producer in another language ------------------------------------------------------------


def _node_cache() -> Path:
    """Where the Node producer's packages are installed once: a cache keyed by package.json."""
    manifest = (NODE_DIR / "package.json").read_bytes()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llmtap-tests" / f"node-{hashlib.sha256(manifest).hexdigest()[:12]}"


@pytest.fixture(scope="module")
def node_producer() -> list[str]:
    """The argv that runs tests/node/produce.mjs beside its installed npm packages."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(
            "SKIPPED LOUDLY: node/npm not on PATH, so the JavaScript producer of the wire format "
            "is not tested (install Node.js 18+ to run it)"
        )
    cache = _node_cache()
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copy2(NODE_DIR / "package.json", cache / "package.json")
    if not (cache / "node_modules" / "@msgpack" / "msgpack").is_dir():
        argv = [npm, "install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error"]
        done = subprocess.run(
            argv, cwd=cache, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=False
        )
        assert done.returncode == 0, f"npm install failed: {done.stderr[-2000:]}"
    shutil.copy2(NODE_DIR / "produce.mjs", cache / "produce.mjs")  # ESM finds node_modules here
    return [node, str(cache / "produce.mjs")]


def test_a_node_producer_is_counted_exactly(
    node_producer: list[str], redis_url: str, r: redis.Redis
) -> None:
    """Call and rollup events from JavaScript, without latency and with whole floats as integers,
    in `e` and `b` entries: the cost and latency workers count every one, none dead-lettered."""
    done = subprocess.run(
        [*node_producer, redis_url, "24"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout)
    assert r.xlen(keys.EVENTS) == sent["entries"]
    for field, value in _stream_values(r):
        definition = "event" if field == keys.FIELD_EVENT else "batch"
        _validator(events.json_schema(), definition).validate(value)
    stats = burst(redis_url, ["cost", "latency"])
    assert {name: s.dead_letters for name, s in stats.items()} == {"cost": 0, "latency": 0}
    assert r.xlen(keys.DLQ) == 0
    assert stats["cost"].processed == sent["call_events"] + sent["rollups"]
    totals = day_totals(r, DAY)
    assert {name: totals.get(name, 0) for name in sent["totals"]} == sent["totals"]
    assert sent["totals"]["calls"] == 24 and sent["totals"]["errors"] > 0
    assert latency_events(r, "d", DAY) == sent["call_events"]
    assert _latency_sum(r, DAY) == sent["latency_sum"]


def _latency_sum(r: redis.Redis, day: str) -> float:
    """The weighted sum of call latencies (seconds) in a day's sketches (all backends/models)."""
    total = 0.0
    for member in r.smembers(keys.latency_index("d", day)):
        backend, model = json.loads(member)
        total += float(r.hget(keys.latency("d", day, backend, model), "latency:sum") or 0)
    return total
