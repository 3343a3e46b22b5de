"""The consumer contract, against the embedded Valkey, for both engines (loop and FastStream)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from llmtap import events, keys
from llmtap.consumers.cost import CostProcessor
from llmtap.consumers.registry import spec
from llmtap.consumers.runtime import reclaim
from llmtap.consumers.runtime.commit import (
    COMMIT_LUA,
    Commit,
    Committer,
    ScriptPart,
    Writes,
    compose,
)
from llmtap.consumers.runtime.consumer import Consumer
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.consumers.runtime.relay import RELAY_LUA, relay_script
from llmtap.notify import HEARTBEAT_VERSION, decode_heartbeat
from llmtap.settings import Settings
from llmtap.testing import Workload
from tests.consumer_helpers import (
    burst,
    config,
    day_totals,
    latency_events,
    stats,
    truth_totals,
)
from tests.contract_helpers import garbage
from tests.factories import rollup_event, rollup_row

ENGINES = ("loop", "faststream")


@pytest.mark.parametrize("engine", ENGINES)
def test_backlog_written_before_first_start_is_processed(
    r: redis.Redis, redis_url: str, engine: str
) -> None:
    """Events written before any group exists are all counted (groups start at id 0)."""
    workload = Workload(1)
    workload.write(r, 5_000)
    results = burst(redis_url, engine=engine)
    assert day_totals(r) == truth_totals(workload.truth)
    assert latency_events(r) == workload.truth.call_events
    assert results["cost"].processed == results["latency"].processed == 5_000


@pytest.mark.parametrize("engine", ENGINES)
def test_restart_resumes_without_reprocessing(r: redis.Redis, redis_url: str, engine: str) -> None:
    """A second run counts only what was added after the first one."""
    workload = Workload(2)
    workload.write(r, 3_000)
    burst(redis_url, engine=engine)
    workload.write(r, 2_000)
    second = burst(redis_url, engine=engine)
    assert second["cost"].processed == 2_000
    assert day_totals(r) == truth_totals(workload.truth)
    assert latency_events(r) == workload.truth.call_events
    assert stats(r, keys.GROUP_COST)["processed"] == 5_000


@pytest.mark.parametrize("engine", ENGINES)
def test_garbage_goes_to_the_dlq_and_good_events_count_exactly(
    r: redis.Redis, redis_url: str, engine: str
) -> None:
    """10k bad entries of every kind are dead-lettered with reasons; good ones count exactly."""
    workload = Workload(3)
    kinds = garbage()
    pipe = r.pipeline(transaction=False)
    good_entries = list(workload.entries(4_000))
    bad = 0
    for i in range(10_000):
        entry = kinds[i % len(kinds)]
        pipe.xadd(keys.EVENTS, entry)  # type: ignore[arg-type]
        bad += 1
        if i % 25 == 0 and good_entries:
            pipe.xadd(keys.EVENTS, good_entries.pop())  # type: ignore[arg-type]
    for entry in good_entries:
        pipe.xadd(keys.EVENTS, entry)  # type: ignore[arg-type]
    pipe.execute()
    mixed_good = 2 * sum(1 for i in range(10_000) if i % len(kinds) == len(kinds) - 1)
    results = burst(redis_url, engine=engine)
    assert results["cost"].dead_letters == bad
    assert results["latency"].processed == workload.truth.total_events + mixed_good
    assert stats(r, keys.GROUP_COST)["dlq"] == bad
    letters = r.xrange(keys.DLQ, count=100)
    stream = keys.EVENTS.encode()
    assert all(fields[b"reason"] and fields[b"stream"] == stream for _, fields in letters)
    groups = [fields[b"group"] for _, fields in r.xrange(keys.DLQ)]
    assert groups.count(b"cost") == groups.count(b"latency") == bad
    reasons = {fields[b"reason"] for _, fields in r.xrange(keys.DLQ)}
    assert len(reasons) >= len(kinds) - 1
    totals = day_totals(r)
    assert totals["cost_nanousd"] == workload.truth.cost_nanousd
    assert totals["calls"] == workload.truth.calls


@pytest.mark.parametrize("engine", ENGINES)
def test_duplicated_rollup_counts_once(r: redis.Redis, redis_url: str, engine: str) -> None:
    """The same rollup (producer and seq) written three times, in and across units, counts once."""
    workload = Workload(4)
    rollup = workload.rollup(1_767_225_600.0)
    raw = events.encode(rollup)
    r.xadd(keys.EVENTS, {keys.FIELD_EVENT: raw})
    r.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch([rollup, rollup])})
    burst(redis_url, ["cost"], engine=engine)
    r.xadd(keys.EVENTS, {keys.FIELD_EVENT: raw})
    burst(redis_url, ["cost"], engine=engine)
    assert day_totals(r)["cost_nanousd"] == rollup_cost(rollup)
    assert stats(r, keys.GROUP_COST)["duplicates"] == 3
    assert r.hget(keys.producer(rollup.producer_id), "seq") == str(rollup.seq).encode()


def rollup_cost(rollup: events.RollupEvent) -> int:
    """Return a rollup's total cost in nano-USD."""
    return sum(row.cost_nanousd for row in rollup.rows)


async def _consumer(url: str, **overrides: object) -> Consumer:
    consumer = Consumer(aredis.Redis.from_url(url), CostProcessor, config(**overrides))
    await consumer.setup()
    return consumer


def test_entries_taken_over_before_commit_are_applied_once(r: redis.Redis, redis_url: str) -> None:
    """A consumer whose entries were reclaimed by another drops them at commit time."""
    workload = Workload(5)
    workload.write(r, 10_000)

    async def scenario() -> tuple[int, int]:
        slow = await _consumer(redis_url)
        slow.absorb(await slow.read(None))  # read and folded, not committed
        fast = await _consumer(redis_url, claim_idle_s=0.0, read_count=7)
        claimed = await reclaim.reclaim(fast)  # takes 70 entries over
        await fast.flush()
        await slow.flush()  # must drop those 70 and apply the rest
        while entries := await slow.read(None):
            slow.absorb(entries)
            await slow.flush()
        await slow.client.aclose()
        await fast.client.aclose()
        return claimed, slow.totals.conflicts

    claimed, conflicts = asyncio.run(scenario())
    assert claimed == 70
    assert conflicts == 1
    assert day_totals(r) == truth_totals(workload.truth)
    assert stats(r, keys.GROUP_COST)["processed"] == 10_000


def test_a_commit_replayed_after_a_lost_reply_applies_nothing(
    r: redis.Redis, redis_url: str
) -> None:
    """Committing the same unit twice (reply lost, retried) changes nothing the second time."""
    workload = Workload(6)
    workload.write(r, 500)

    async def scenario() -> bool:
        consumer = await _consumer(redis_url)
        consumer.absorb(await consumer.read(None))
        commit = consumer._commit(consumer.unit)
        committer = Committer(consumer.client)
        first = await committer.commit(commit)
        second = await committer.commit(commit)
        await consumer.client.aclose()
        return first.applied and not second.applied and len(second.lost_ids) == len(commit.ids)

    assert asyncio.run(scenario())
    assert day_totals(r) == truth_totals(workload.truth)


def test_entries_delivered_too_often_go_to_the_dlq(r: redis.Redis, redis_url: str) -> None:
    """An entry delivered more than max_deliveries times is dead-lettered, not applied."""
    workload = Workload(7)
    workload.write(r, 150)

    async def scenario() -> int:
        first = await _consumer(redis_url)
        await first.read(None)  # delivery 1, then "crash"
        claimed = 0
        for _ in range(2):  # deliveries 2 and 3 through reclaims that also "crash"
            thief = await _consumer(redis_url, claim_idle_s=0.0)
            claimed += await reclaim.reclaim(thief)
            await thief.client.aclose()
        last = await _consumer(redis_url, claim_idle_s=0.0, max_deliveries=3)
        await reclaim.reclaim(last)  # delivery 4 > 3: dead letters
        await last.flush()
        await first.client.aclose()
        await last.client.aclose()
        return last.totals.dead_letters

    dead = asyncio.run(scenario())
    assert dead == r.xlen(keys.DLQ) > 0
    assert b"delivered 4 times" in r.xrange(keys.DLQ, count=1)[0][1][b"reason"]
    assert day_totals(r)["cost_nanousd"] == 0
    assert r.xpending(keys.EVENTS, keys.GROUP_COST)["pending"] == 0


def test_dead_consumers_with_nothing_pending_are_removed(r: redis.Redis, redis_url: str) -> None:
    """A consumer idle past the threshold with nothing pending is deleted; a live one is not."""
    Workload(8).write(r, 10)

    async def scenario() -> set[str]:
        dead = await _consumer(redis_url)
        dead.absorb(await dead.read(None))
        await dead.flush()  # nothing pending any more
        survivor = await _consumer(redis_url, claim_idle_s=0.0)
        await survivor.read(None)  # joins the group
        await reclaim.remove_dead_consumers(survivor)
        infos = await survivor.client.xinfo_consumers(keys.EVENTS, keys.GROUP_COST)
        await dead.client.aclose()
        await survivor.client.aclose()
        return {info["name"].decode() for info in infos}

    names = asyncio.run(scenario())
    assert len(names) == 1 and next(iter(names)).endswith(tuple("0123456789abcdef"))


def test_integer_increments_stay_exact_beyond_two_to_the_53(r: redis.Redis, redis_url: str) -> None:
    """Cost increments larger than 2**53 nano-USD are added exactly."""
    big = rollup_row(backend="b", model="m", calls=1, cost_nanousd=2**60 + 1)
    rollup = rollup_event([big, big], window_start=1_767_225_600.0, window_end=1_767_225_605.0)
    r.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(rollup)})
    burst(redis_url, ["cost"])
    assert day_totals(r)["cost_nanousd"] == 2 * (2**60 + 1)


def test_faststream_app_lifespan_processes_a_backlog_and_documents_the_channel(
    r: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The FastStream app built for its CLI drains a backlog through its lifespan hooks."""
    from llmtap.consumers.runtime import faststream_app

    workload = Workload(9)
    workload.write(r, 3_000)
    monkeypatch.setenv("LLMTAP_REDIS_URL", redis_url)
    monkeypatch.setenv("LLMTAP_WORKER", "cost")

    async def scenario() -> None:
        app = faststream_app.create_app()
        await app.start()
        for _ in range(600):
            if (
                r.xinfo_groups(keys.EVENTS)[0]["lag"] == 0
                and not r.xpending(keys.EVENTS, keys.GROUP_COST)["pending"]
            ):
                break
            await asyncio.sleep(0.05)
        await app.stop()
        schema = app.schema.to_specification().to_jsonable()
        assert f"{keys.EVENTS}:cost" in schema["channels"]

    asyncio.run(scenario())
    assert day_totals(r) == truth_totals(workload.truth)
    assert r.xinfo_groups(keys.EVENTS)[0]["consumers"] == 0  # left the group on shutdown


def test_the_commit_script_is_a_packaged_lua_file_composed_with_its_parts() -> None:
    """commit.lua and relay.lua ship in the package; the one-slot shebang, then each part's
    source and its STEPS row come first (the relay applies the steps)."""
    part = ScriptPart("alerts", "noop_step", "local function noop_step(o) return 0 end")
    script = compose([part])
    assert COMMIT_LUA.startswith("-- The atomic commit") and "u.ids" in COMMIT_LUA
    assert script.startswith("#!lua\n" + part.source) and script.endswith(COMMIT_LUA)
    assert "local STEPS = {{'alerts', noop_step}}" in script
    assert compose() == "#!lua\nlocal STEPS = {}\n" + COMMIT_LUA
    relay = relay_script([part])
    assert relay.startswith("#!lua\n" + part.source) and relay.endswith(RELAY_LUA)
    assert "u.ids" not in relay


@pytest.mark.parametrize(
    ("parts", "error"),
    [
        (lambda: [ScriptPart("sessions", "f", "")], ValueError),
        (lambda: [ScriptPart("alerts", "not a name", "")], ValueError),
        (lambda: compose([ScriptPart("alerts", "f", "")] * 2), ValueError),
        (
            lambda: ScriptPart.from_resource(
                "llmtap", "lua/none.lua", field="alerts", function="f"
            ),
            FileNotFoundError,
        ),
    ],
)
def test_a_script_part_that_cannot_work_is_refused(parts: Any, error: type[Exception]) -> None:
    """An unknown field, a bad function name, two parts for one field or a missing file raise."""
    with pytest.raises(error):
        parts()


def test_alert_steps_without_a_part_to_apply_them_are_refused(
    r: redis.Redis, redis_url: str
) -> None:
    """A commit whose writes hold alert steps fails before Redis when no part applies them."""

    async def scenario() -> None:
        client = aredis.Redis.from_url(redis_url)
        writes = Writes()
        writes.alerts.append({"key": "x"})
        commit = Commit(
            keys.EVENTS, keys.GROUP_COST, "c", [], {}, 60, writes, [], keys.DLQ, 100, "s", {}
        )
        try:
            with pytest.raises(LookupError, match="alerts"):
                await Committer(client).commit(commit)
        finally:
            await client.aclose()

    asyncio.run(scenario())
    assert not r.exists("s")


def test_the_heartbeat_is_the_versioned_notify_document(r: redis.Redis, redis_url: str) -> None:
    """A consumer's heartbeat decodes with llmtap.notify.decode_heartbeat."""

    async def scenario() -> str:
        consumer = Consumer(aredis.Redis.from_url(redis_url), CostProcessor, config())
        await consumer.heartbeat()
        await consumer.client.aclose()
        return keys.heartbeat(consumer.group, consumer.name)

    beat = decode_heartbeat(r.get(asyncio.run(scenario())) or b"")
    assert beat is not None and beat.v == HEARTBEAT_VERSION and beat.processed == 0


def test_workers_build_from_the_context_not_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sessions processor takes max_history from the context's settings, built once."""
    ctx = WorkerContext.from_environ("redis://x", {"CS_PROFILING_MAX_HISTORY": "7"})
    monkeypatch.setenv("CS_PROFILING_MAX_HISTORY", "9")
    monkeypatch.setattr(Settings, "from_env", None)  # any later read would fail
    processor = spec("sessions").build(ctx)
    assert processor.max_history == 7  # type: ignore[attr-defined]
    assert ctx.environ["CS_PROFILING_MAX_HISTORY"] == "7"
    with pytest.raises(TypeError):
        ctx.environ["X"] = "y"  # type: ignore[index]


def test_the_context_snapshots_the_environment_when_built() -> None:
    """Later changes to the mapping it was built from do not reach the context."""
    environ = {"LLMTAP_CLAIM_IDLE_S": "2.5", "LLMTAP_RETENTION_MINUTE_S": "3600"}
    ctx = WorkerContext.from_environ("redis://x", environ)
    environ["LLMTAP_CLAIM_IDLE_S"] = "9"
    assert ctx.runtime.claim_idle_s == 2.5 and ctx.retention.minute_s == 3600
    assert ctx.environ["LLMTAP_CLAIM_IDLE_S"] == "2.5"
