"""The example plugin (installed from examples/llmtap-cost-by-tag, found by its entry point)
passes the consumer contract the built-in workers pass: backlog from id 0, restart without
reprocessing, garbage to the DLQ, entries taken over before commit applied once, too many
deliveries to the DLQ, and exactly once with replicas SIGKILLed mid-stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
import redis.asyncio as aredis

from llmtap import keys
from llmtap.consumers import registry
from llmtap.consumers.runtime import reclaim
from llmtap.consumers.runtime.consumer import Consumer
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.settings import Settings
from tests.consumer_helpers import burst, config, stats
from tests.contract_helpers import crash_run, garbage
from tests.plugins.helpers import PLUGIN, TaggedWorkload, expected, plugin_day

ENGINES = ("loop", "faststream")


def _consumer(url: str, **overrides: object) -> Consumer:
    worker = registry.spec(PLUGIN)
    ctx = WorkerContext.from_environ(url, {}, settings=Settings(), runtime=config(**overrides))
    return Consumer(aredis.Redis.from_url(url), lambda: worker.build(ctx), ctx.runtime)


@pytest.mark.parametrize("engine", ENGINES)
def test_backlog_then_restart_count_exactly_once(
    r: redis.Redis, redis_url: str, engine: str
) -> None:
    """A backlog written before the group exists is counted; a second run adds only the new."""
    workload = TaggedWorkload(21)
    workload.write(r, 3_000)
    first = burst(redis_url, [PLUGIN], engine=engine)
    workload.write(r, 2_000)
    second = burst(redis_url, [PLUGIN], engine=engine)
    assert first[PLUGIN].processed == 3_000 and second[PLUGIN].processed == 2_000
    assert plugin_day(r) == expected(workload)
    assert stats(r, PLUGIN)["processed"] == 5_000


@pytest.mark.parametrize("engine", ENGINES)
def test_garbage_goes_to_the_dlq_and_good_events_count_exactly(
    r: redis.Redis, redis_url: str, engine: str
) -> None:
    """Bad entries of every kind are dead-lettered under the plugin's group; good ones count."""
    workload = TaggedWorkload(22)
    kinds = garbage()
    pipe = r.pipeline(transaction=False)
    for i in range(1_200):
        pipe.xadd(keys.EVENTS, kinds[i % len(kinds)])  # type: ignore[arg-type]
    for entry in workload.entries(2_000):
        pipe.xadd(keys.EVENTS, entry)  # type: ignore[arg-type]
    pipe.execute()
    results = burst(redis_url, [PLUGIN], engine=engine)
    assert results[PLUGIN].dead_letters == 1_200
    groups = [fields[b"group"] for _, fields in r.xrange(keys.DLQ)]
    assert groups.count(PLUGIN.encode()) == 1_200
    mixed = 1_200 // len(kinds)  # entries holding two good calls (untagged) beside a bad one
    day = plugin_day(r)
    assert day.pop("_untagged|events") == expected(workload).get("_untagged|events", 0) + 2 * mixed
    want = expected(workload)
    want.pop("_untagged|events", None)
    assert {k: v for k, v in day.items() if not k.startswith("_untagged")} == {
        k: v for k, v in want.items() if not k.startswith("_untagged")
    }


def test_entries_taken_over_before_commit_are_applied_once(r: redis.Redis, redis_url: str) -> None:
    """A plugin consumer whose entries a reclaimer took drops them at commit and applies the
    rest; the reclaimer applies its share: every event counts once."""
    workload = TaggedWorkload(23)
    workload.write(r, 10_000)

    async def scenario() -> tuple[int, int]:
        slow = _consumer(redis_url)
        await slow.setup()
        slow.absorb(await slow.read(None))
        fast = _consumer(redis_url, claim_idle_s=0.0, read_count=7)
        claimed = await reclaim.reclaim(fast)
        await fast.flush()
        await slow.flush()
        while entries := await slow.read(None):
            slow.absorb(entries)
            await slow.flush()
        await slow.client.aclose()
        await fast.client.aclose()
        return claimed, slow.totals.conflicts

    claimed, conflicts = asyncio.run(scenario())
    assert claimed == 70 and conflicts == 1
    assert plugin_day(r) == expected(workload)


def test_entries_delivered_too_often_go_to_the_dlq(r: redis.Redis, redis_url: str) -> None:
    """An entry delivered more than max_deliveries times is dead-lettered, not counted."""
    TaggedWorkload(24).write(r, 150)

    async def scenario() -> int:
        first = _consumer(redis_url)
        await first.setup()
        await first.read(None)  # delivery 1, then "crash"
        for _ in range(2):
            thief = _consumer(redis_url, claim_idle_s=0.0)
            await reclaim.reclaim(thief)
            await thief.client.aclose()
        last = _consumer(redis_url, claim_idle_s=0.0, max_deliveries=3)
        await reclaim.reclaim(last)
        await last.flush()
        await first.client.aclose()
        await last.client.aclose()
        return last.totals.dead_letters

    dead = asyncio.run(scenario())
    assert dead == r.xlen(keys.DLQ) > 0
    assert plugin_day(r) == {}
    assert r.xpending(keys.EVENTS, PLUGIN)["pending"] == 0


@pytest.mark.slow
def test_sigkilled_plugin_replicas_neither_lose_nor_double_count(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """``llmtap worker cost-by-tag`` replicas SIGKILLed mid-stream count every event once."""
    workload = TaggedWorkload(25, span_s=1200)
    writer = crash_run(
        r,
        redis_url,
        tmp_path / "plugin.log",
        workload,
        n_events=40_000,
        groups=(PLUGIN,),
        command=("worker", PLUGIN),
    )
    assert plugin_day(r) == expected(workload)
    counters = stats(r, PLUGIN)
    assert counters["processed"] == workload.truth.total_events + writer.duplicates
    assert counters["reclaimed"] > 0
