"""The one place a Redis client is made from a URL: a standalone server, or Redis/Valkey Cluster.

``redis+cluster://[user:password@]host:port/0`` (``rediss+cluster://`` with TLS) selects
redis-py's ``RedisCluster`` (sync) or ``redis.asyncio.cluster.RedisCluster``: the client
discovers the other nodes from the one named and follows slot moves and failovers. ACL user
and password, TLS and its query parameters work as in ``redis://``/``rediss://``. Every other
URL goes to ``Redis.from_url`` unchanged.

The cluster clients share the command API the package uses (streams, hashes, scripts,
pipelines), so both factories return the standalone type for the type checker.
"""

from __future__ import annotations

from typing import Any, Final, cast

import redis
import redis.asyncio as aredis
from redis.exceptions import RedisClusterException

CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster(url: str | None) -> bool:
    """True when ``url`` names a cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return bool(url) and url.partition("://")[0].lower() in CLUSTER_SCHEMES  # type: ignore[union-attr]


def plain_url(url: str) -> str:
    """Return ``url`` with a cluster scheme replaced by the ``redis``/``rediss`` it wraps."""
    scheme, sep, rest = url.partition("://")
    return f"{CLUSTER_SCHEMES.get(scheme.lower(), scheme)}{sep}{rest}"


def sync_client(url: str, **options: Any) -> redis.Redis:
    """Return a client for ``url`` (see the module docstring); ``options`` go to the client
    (timeouts, retry). Opens no connection for a standalone server; a cluster client reads
    the slot map at once and raises redis errors when no node answers."""
    if is_cluster(url):
        from redis.cluster import RedisCluster

        try:
            return cast("redis.Redis", RedisCluster.from_url(plain_url(url), **options))
        except RedisClusterException as exc:  # raised when no startup node answers
            raise redis.ConnectionError(f"cluster unavailable: {exc}") from exc
    return redis.Redis.from_url(url, **options)


def wait_for_replicas(client: redis.Redis, key: str, replicas: int, timeout_ms: int) -> None:
    """Block until ``replicas`` replicas of the server holding ``key`` have this connection's
    writes (WAIT), at most ``timeout_ms``. Raises redis.ConnectionError when fewer confirm:
    the write may be lost if that server fails now."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(key)
        acked = client.execute_command("WAIT", replicas, timeout_ms, target_nodes=node)
    else:
        acked = client.wait(replicas, timeout_ms)
    if int(acked) < replicas:
        raise redis.ConnectionError(f"write confirmed by {acked} of {replicas} replicas")


def async_client(url: str, **options: Any) -> aredis.Redis:
    """Return an asyncio client for ``url`` (see :func:`sync_client`); a cluster client reads
    the slot map on its first command."""
    if is_cluster(url):
        from redis.asyncio.cluster import RedisCluster

        return cast("aredis.Redis", RedisCluster.from_url(plain_url(url), **options))
    return aredis.Redis.from_url(url, **options)
