"""The public analyzer API: a plugin's writes are confined to its prefix, its outbox messages
are committed exactly once with the XACKs, and the range readers cover its buckets."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
import redis
import redis.asyncio as aredis

from llmtap import aggregates, events, keys, notify, webhooks
from llmtap.analyzers import sketch
from llmtap.consumers import registry
from llmtap.consumers.runtime.consumer import Consumer
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.plugin import (
    BaseAnalyzer,
    PluginError,
    Worker,
    Writes,
    add_sketch,
    confine,
    notification,
)
from llmtap.read import ranges
from llmtap.settings import Settings
from llmtap.testing import LocalReceiver, Workload
from tests.alert_helpers import deliver, webhook
from tests.consumer_helpers import burst, config

START = 1_767_225_600.0


def _context(url: str = "redis://127.0.0.1:1") -> WorkerContext:
    return WorkerContext.from_environ(url, {}, settings=Settings(), runtime=config())


class Notifier(BaseAnalyzer):
    """Counts calls under its prefix and sends one notification per failed call."""

    def add_call(self, event: events.CallEvent) -> None:
        self.out.ints[keys.plugin_key("notes", "calls")]["n"] += 1
        if not event.success:
            self.out.notify.append(
                notification(
                    "notes",
                    rule="failed",
                    key=event.call_id,
                    summary=f"call {event.call_id} failed",
                    at=event.end_time,
                    labels={"model": event.model_name},
                )
            )


def test_the_built_in_workers_are_declared_with_the_public_worker() -> None:
    """Every entry of the registry is a llmtap.plugin.Worker: the API plugins get is enough."""
    assert all(isinstance(item, Worker) for item in registry.WORKERS.values())
    assert registry.WorkerSpec is Worker


def test_writes_outside_the_prefix_are_refused_naming_the_key() -> None:
    """A plugin analyzer that writes a built-in's key fails its commit with the key and prefix."""

    class Escaper(BaseAnalyzer):
        def add_call(self, event: events.CallEvent) -> None:
            self.out.ints[keys.cost("d", "20260101")]["total"] += 1

    worker = confine(Worker.plugin("escaper", "bad", lambda ctx: Escaper()))
    analyzer = worker.build(_context())
    analyzer.add_call(Workload(1).call(START))
    refused = r"'llmtap:\{s0\}:cost:d:20260101'.*llmtap:\{s0\}:x:escaper:"
    with pytest.raises(PluginError, match=refused):
        analyzer.writes()


@pytest.mark.parametrize(
    ("index", "weight"), [(sketch.MAX_INDEX + 1, 1.0), (sketch.MIN_INDEX - 1, 1.0), (0, -1.0)]
)
def test_packed_sketch_bins_outside_the_sketch_are_refused(index: int, weight: float) -> None:
    """A plugin's packed-sketch bin beyond the sketch's range (the commit script would pad the
    string out to it) or a negative weight fails the commit, naming the key and the bin; a
    sketch written with add_sketch passes, and lands beside its hash."""

    class Binner(BaseAnalyzer):
        def add_call(self, event: events.CallEvent) -> None:
            key = keys.plugin_key("binner", "size")
            add_sketch(self.out, key, "size", [event.latency])
            self.out.sketches[key]["bad:sketch"][index] += weight

    analyzer = confine(Worker.plugin("binner", "bad", lambda ctx: Binner())).build(_context())
    analyzer.add_call(Workload(1).call(START))
    with pytest.raises(PluginError, match=rf"size bad:sketch'.*bin {index}"):
        analyzer.writes()
    fine = Binner()
    fine.add_call(Workload(1).call(START))
    (fields,) = fine.out.sketches.values()
    del fields["bad:sketch"]
    assert list(fields) == ["size:sketch"]


@pytest.mark.parametrize(
    ("worker", "reason"),
    [
        (Worker("Bad Name", "g", "", lambda ctx: BaseAnalyzer()), "plugin name"),
        (Worker("ok", "", "", lambda ctx: BaseAnalyzer()), "group"),
        (Worker("ok", "ok", "", lambda ctx: BaseAnalyzer(), runner=lambda *a: None), "runner"),  # type: ignore[arg-type,return-value]
    ],
)
def test_a_plugin_declaration_that_cannot_be_confined_is_refused(
    worker: Worker, reason: str
) -> None:
    """Bad names, empty groups and runners (which could write anywhere) are refused."""
    with pytest.raises(PluginError, match=reason):
        confine(worker)


def test_notifications_are_enqueued_once_with_the_commit(r: redis.Redis, redis_url: str) -> None:
    """Outbox messages in the writes are committed with the XACKs and relayed to llmtap:notify;
    a replayed commit and a second relay append nothing, and the notifier's decoder reads them
    as alerts."""
    workload = Workload(3)
    workload.write(r, 2_000)
    worker = confine(Worker.plugin("notes", "notes", lambda ctx: Notifier()))
    ctx = _context(redis_url)

    async def scenario() -> bool:
        consumer = Consumer(aredis.Redis.from_url(redis_url), lambda: worker.build(ctx), config())
        await consumer.setup()
        while entries := await consumer.read(None):
            consumer.absorb(entries)
        commit = consumer._commit(consumer.unit)
        first = await consumer._committer.commit(commit)
        again = await consumer._committer.commit(commit)
        relayed = [await consumer.relay(), await consumer.relay()]
        await consumer.client.aclose()
        return first.applied and not again.applied and relayed == [1, 0]

    assert asyncio.run(scenario())
    failed = {
        f"notes:{item.call_id}"
        for _, fields in r.xrange(keys.EVENTS)
        for item in events.decode_entry(fields)
        if isinstance(item, events.CallEvent) and not item.success
    }
    messages = [notify.decode_message(fields) for _, fields in r.xrange(keys.NOTIFY)]
    keys_sent = [m.payload["idempotency_key"] for m in messages]
    assert len(keys_sent) == len(failed) > 0
    assert set(keys_sent) == failed
    assert all(m.kind == "alert" and m.payload["rule"] == "notes:failed" for m in messages)
    assert int(r.hget(keys.plugin_key("notes", "calls"), "n") or 0) == workload.truth.call_events


def test_a_plugin_notification_reaches_a_signed_webhook(
    r: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin run by the runtime enqueues its alert; the notifier delivers it, signed, in the
    webhook schema v1, once."""
    call = Workload(4).call(START)
    failed = msgspec.structs.replace(call, success=False, call_id="c-failed")
    r.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(failed)})
    worker = confine(Worker.plugin("notes", "notes", lambda ctx: Notifier()))
    monkeypatch.setitem(registry.WORKERS, "notes", worker)  # so run_burst finds it by name
    assert burst(redis_url, ["notes"])["notes"].processed == 1
    with LocalReceiver(secret="s3cret") as rx:
        deliver(redis_url, [webhook("ops", rx.url)])
    (got,) = rx.accepted
    message = webhooks.verify("s3cret", got.headers, got.body)
    (alert,) = message["alerts"]
    assert alert["rule"] == "notes:failed" and alert["kind"] == "plugin"
    assert alert["idempotency_key"] == "notes:c-failed" and alert["status"] == "firing"
    assert alert["labels"] == {"model": failed.model_name}


def test_ranges_sum_and_merge_what_a_plugin_wrote(r: redis.Redis) -> None:
    """sum_ints covers a range with day/hour/minute buckets; timings merges the sketches
    (stats hash and packed sketch per bucket)."""
    writes = Writes()
    values: list[float] = []
    for i, ts in enumerate((START, START + 90, START + 3 * 3600, START + 86400 + 60)):
        for g in keys.GRANULARITIES:
            key = keys.plugin_bucket("demo", "n", g, keys.bucket(g, ts))
            writes.ints[key]["calls"] += i + 1
            sizes = keys.plugin_bucket("demo", "size", g, keys.bucket(g, ts))
            add_sketch(writes, sizes, "size", [float(i + 1), 10.0 * (i + 1)])
        values += [float(i + 1), 10.0 * (i + 1)]
    _apply(r, writes)

    def key_of(g: str, name: str) -> str:
        return keys.plugin_bucket("demo", "n", g, name)

    assert ranges.sum_ints(r, key_of, START, START + 86400)["calls"] == 1 + 2 + 3
    assert ranges.sum_ints(r, key_of, START + 60, START + 2 * 86400)["calls"] == 2 + 3 + 4

    def sizes_of(g: str, name: str) -> str:
        return keys.plugin_bucket("demo", "size", g, name)

    whole = ranges.timings(r, sizes_of, "size", START, START + 2 * 86400)
    assert (whole.n, whole.low, whole.high) == (8, 1.0, 40.0)
    assert whole.total == pytest.approx(sum(values))
    assert ranges.quantiles(whole)["p50"] == pytest.approx(sorted(values)[3], rel=0.02)
    names = ranges.bucket_names(START, START + 86400 + 120)
    assert names == [("d", "20260101"), ("m", "20260102T0000"), ("m", "20260102T0001")]


def _apply(r: redis.Redis, writes: Writes) -> None:
    """Apply writes the way the commit does (increments, minima, maxima, packed sketches
    written once each) for a reader test."""
    pipe = r.pipeline()
    for key, fields in writes.ints.items():
        for name, value in fields.items():
            pipe.hincrby(key, name, value)
    for key, floats in writes.floats.items():
        for name, fvalue in floats.items():
            pipe.hincrbyfloat(key, name, fvalue)
    table: dict[str, Any]
    for table in (writes.mins, writes.maxs):
        for key, fields in table.items():
            for name, value in fields.items():
                pipe.hset(key, name, value)
    for key, sketches in writes.sketches.items():
        for name, bins in sketches.items():
            pipe.hset(key, name, aggregates.encode_sketch(bins))
    pipe.execute()
