"""The FastStream engine on a real 3+3 Valkey Cluster (its ``RedisClusterBroker``) and with
several shards on one Valkey: one engine per shard, exact totals merged by the read side."""

from __future__ import annotations

import redis

from llmtap.embedded_cluster import EmbeddedCluster
from tests.cluster.conftest import SHARDS
from tests.cluster.helpers import drain, merged, read_totals, write
from tests.consumer_helpers import workloads_on_shards


def test_faststream_counts_every_shard_of_a_cluster_exactly(
    cluster: EmbeddedCluster, rc: redis.Redis
) -> None:
    """Three producers on three shards, drained by the cost and latency workers under
    FastStream's cluster broker: the totals equal the ground truth of all three."""
    workloads = workloads_on_shards(SHARDS)
    for workload in workloads:
        write(rc, workload, 3_000, SHARDS)
    results = drain(cluster.url, SHARDS, engine="faststream")
    assert {s.engine for s in results.values()} == {"faststream"}
    assert results["cost"].processed == sum(w.truth.total_events for w in workloads)
    assert results["latency"].processed == results["cost"].processed
    assert read_totals(rc) == merged([w.truth for w in workloads])


def test_faststream_counts_several_shards_on_one_valkey(r: redis.Redis, redis_url: str) -> None:
    """``LLMTAP_SHARDS=3`` on a standalone Valkey under FastStream (refused before): exact."""
    workloads = workloads_on_shards(SHARDS)
    for workload in workloads:
        write(r, workload, 2_000, SHARDS)
    results = drain(redis_url, SHARDS, engine="faststream")
    assert results["cost"].processed == sum(w.truth.total_events for w in workloads)
    assert read_totals(r) == merged([w.truth for w in workloads])
