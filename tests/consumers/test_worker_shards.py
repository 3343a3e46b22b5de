"""Replicas that consume a subset of the shards (LLMTAP_WORKER_SHARDS): the setting, and a
shard handed from a dead replica to the one now assigned it through reclaim, counted once.

Shards are hash tags, so three shards run on the session's single Valkey as they do on a
cluster (tests/cluster runs the same runtime on a real one).
"""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aredis

from llmtap import keys
from llmtap.consumers import service
from llmtap.consumers.registry import spec
from llmtap.consumers.runtime.config import worker_shards
from llmtap.consumers.runtime.consumer import Consumer
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.read import query
from llmtap.settings import SettingsError
from tests.consumer_helpers import config, workloads_on_shards

SHARDS = 3
DAY_START = 1_767_225_600.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", (0, 1, 2)), ("2,0", (0, 2)), (" 1 ", (1,)), ("0,1,2", (0, 1, 2))],
)
def test_worker_shards_name_the_shards_a_replica_consumes(
    raw: str, expected: tuple[int, ...]
) -> None:
    """Comma-separated shard numbers, in any order; empty means every shard."""
    assert worker_shards({"LLMTAP_WORKER_SHARDS": raw}, SHARDS) == expected
    assert worker_shards({}, SHARDS) == (0, 1, 2)


@pytest.mark.parametrize("raw", ["3", "-1", "0,0", "a", "0;1", "1,"])
def test_a_shard_that_does_not_exist_fails_at_start_naming_the_variable(raw: str) -> None:
    """A number outside LLMTAP_SHARDS, a repeat or a non-number is refused with the range."""
    with pytest.raises(SettingsError, match=r"LLMTAP_WORKER_SHARDS=.*from 0 to 2"):
        WorkerContext.from_environ(
            "redis://127.0.0.1:1",
            {"LLMTAP_SHARDS": str(SHARDS), "LLMTAP_WORKER_SHARDS": raw},
        )


def test_a_dead_replicas_shards_are_taken_over_by_their_new_owners(
    r: redis.Redis, redis_url: str
) -> None:
    """A replica that read every shard dies before committing; two replicas assigned shard 0
    and shards 1-2 reclaim its entries and count every shard exactly once."""
    workloads = workloads_on_shards(SHARDS, seeds_from=41)
    for shard, workload in enumerate(workloads):
        pipe = r.pipeline(transaction=False)
        for fields in workload.entries(1_500):
            pipe.xadd(keys.events_stream(shard), fields)  # type: ignore[arg-type]
        pipe.execute()

    def context(assigned: str) -> WorkerContext:
        env = {"LLMTAP_SHARDS": str(SHARDS), "LLMTAP_WORKER_SHARDS": assigned}
        return WorkerContext.from_environ(redis_url, env, runtime=config(claim_idle_s=0.1))

    async def scenario() -> list[service.WorkerStats]:
        client = aredis.Redis.from_url(redis_url)
        ctx = context("")
        for shard in ctx.consumed_shards:  # the dead replica: read, never committed
            dead = Consumer(client, lambda: spec("cost").build(ctx), ctx.runtime, shard=shard)
            await dead.setup()
            assert await dead.read(None)
        await client.aclose()
        await asyncio.sleep(0.2)
        stop = asyncio.Event()
        runs = (service.run(context(a), "cost", stop, burst=True) for a in ("0", "1,2"))
        return list(await asyncio.gather(*runs))

    first, second = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert len(first.consumer.split(",")) == 1 and len(second.consumer.split(",")) == 2
    assert first.reclaimed > 0 and second.reclaimed > 0
    assert first.processed == workloads[0].truth.total_events
    assert second.processed == sum(w.truth.total_events for w in workloads[1:])
    row = query.total(r, DAY_START, DAY_START + 86400)
    assert row["calls"] == sum(w.truth.calls for w in workloads)
    assert row["cost_nanousd"] == sum(w.truth.cost_nanousd for w in workloads)
