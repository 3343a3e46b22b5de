"""The sharded pipeline on a real 3+3 Valkey Cluster: every commit in one slot, exact totals
merged by the read side, garbage to each shard's DLQ, rollups de-duplicated, abandoned entries
reclaimed."""

from __future__ import annotations

import asyncio

import redis
from redis.crc import key_slot

from llmtap import events, keys
from llmtap.consumers.registry import spec
from llmtap.consumers.runtime import reclaim
from llmtap.consumers.runtime.consumer import Consumer
from llmtap.embedded_cluster import EmbeddedCluster
from llmtap.read import shards
from tests.cluster.conftest import SHARDS
from tests.cluster.helpers import context, drain, merged, read_totals, write
from tests.consumer_helpers import config, workloads_on_shards


def test_sharded_pipeline_counts_every_shard_exactly(
    cluster: EmbeddedCluster, rc: redis.Redis
) -> None:
    """Three producers on three shards, drained by the cost and latency workers: the read
    side's totals equal the ground truth of all three."""
    workloads = workloads_on_shards(SHARDS)
    for workload in workloads:
        write(rc, workload, 4_000, SHARDS)
    results = drain(cluster.url, SHARDS)
    assert results["cost"].processed == sum(w.truth.total_events for w in workloads)
    assert read_totals(rc) == merged([w.truth for w in workloads])
    assert shards.shard_count(rc) == SHARDS


def test_every_key_of_a_shard_is_in_its_slot(cluster: EmbeddedCluster, rc: redis.Redis) -> None:
    """After a drain, each key holding a shard's data hashes to that shard's slot, and every
    other key to the control slot."""
    for workload in workloads_on_shards(SHARDS):
        write(rc, workload, 1_000, SHARDS)
    drain(cluster.url, SHARDS)
    names = [n.decode() for n in rc.scan_iter(match=keys.ALL_KEYS_PATTERN, count=1000)]
    slots = {f"{{s{k}}}": key_slot(f"{{s{k}}}".encode()) for k in range(SHARDS)}
    control = key_slot(b"{c}")
    assert len(names) > 50
    for name in names:
        tag = name.split(":")[1]
        assert key_slot(name.encode()) == slots.get(tag, control), name
    assert {name.split(":")[1] for name in names} == {*slots, "{c}"}


def test_garbage_goes_to_its_shards_dlq(cluster: EmbeddedCluster, rc: redis.Redis) -> None:
    """An undecodable entry on shard 2 lands in shard 2's DLQ; the good events count exactly."""
    workload = workloads_on_shards(SHARDS)[2]
    stream = write(rc, workload, 500, SHARDS)
    rc.xadd(stream, {keys.FIELD_EVENT: b"\xc1not msgpack"})
    results = drain(cluster.url, SHARDS)
    assert results["cost"].dead_letters == 1
    assert rc.xlen(keys.dlq_stream(2)) == 2  # one per group: cost and latency
    assert rc.xlen(keys.dlq_stream(0)) == 0
    assert read_totals(rc) == merged([workload.truth])


def test_a_retried_rollup_counts_once(cluster: EmbeddedCluster, rc: redis.Redis) -> None:
    """The same rollup (producer, seq) written twice to its shard is counted once."""
    workload = workloads_on_shards(SHARDS)[1]
    rollup = workload.rollup(workload.start)
    stream = keys.events_stream(1)
    for _ in range(2):
        rc.xadd(stream, {keys.FIELD_EVENT: events.encode(rollup)})
    results = drain(cluster.url, SHARDS, ["cost"])
    assert results["cost"].duplicates == 1
    assert read_totals(rc)["calls"] == workload.truth.calls


def test_entries_of_a_dead_consumer_are_reclaimed(
    cluster: EmbeddedCluster, rc: redis.Redis
) -> None:
    """Entries read by a consumer that died before committing are claimed by another on the
    same shard and counted once."""
    workload = workloads_on_shards(SHARDS)[0]
    write(rc, workload, 2_000, SHARDS)
    ctx = context(cluster.url, SHARDS, claim_idle_s=0.05)

    async def scenario() -> None:
        from llmtap.connection import async_client

        client = async_client(cluster.url)
        dead = Consumer(client, lambda: spec("cost").build(ctx), ctx.runtime, shard=0)
        await dead.setup()
        assert await dead.read(None)  # delivered, never committed: the consumer "dies"
        await asyncio.sleep(0.1)
        heir = Consumer(client, lambda: spec("cost").build(ctx), config(claim_idle_s=0.05))
        assert await reclaim.reclaim(heir) > 0
        await heir.flush()
        await client.aclose()

    asyncio.run(scenario())
    drain(cluster.url, SHARDS, ["cost"])
    assert read_totals(rc)["calls"] == workload.truth.calls
    assert read_totals(rc)["cost_nanousd"] == workload.truth.cost_nanousd


def test_worker_stats_add_up_every_shard(cluster: EmbeddedCluster, rc: redis.Redis) -> None:
    """``llmtap worker stats`` counters and stream lengths sum the shards' (one garbage entry
    on shard 1: one DLQ record per group)."""
    from llmtap.read import health

    workloads = workloads_on_shards(SHARDS)
    for workload in workloads:
        write(rc, workload, 1_000, SHARDS)
    rc.xadd(keys.events_stream(1), {keys.FIELD_EVENT: b"\xc1"})
    drain(cluster.url, SHARDS)
    stats = health.group_stats(rc, keys.GROUP_COST)
    assert stats["processed"] == sum(w.truth.total_events for w in workloads)
    assert stats["dlq"] == 1 and stats["pending"] == 0 and stats["lag"] == 0
    streams = health.stream_stats(rc)
    assert streams["stream_length"] == sum(rc.xlen(keys.events_stream(k)) for k in range(SHARDS))
    assert streams["dlq_length"] == 2
