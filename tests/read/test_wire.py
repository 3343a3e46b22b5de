"""Many read commands in one round trip (``llmtap.read.wire``): the replies a pipeline gives,
on a standalone server and over RESP3, and a connection never handed out with replies unread."""

from __future__ import annotations

import pytest
import redis

from llmtap.read import wire

COMMANDS = [
    ("HGETALL", "h"),
    ("HGETALL", "missing"),
    ("HMGET", "h", "a", "nope"),
    ("SMEMBERS", "s"),
    ("SMEMBERS", "missing"),
]


def _seed(r: redis.Redis) -> None:
    r.hset("h", mapping={"a": "1", "b": "2"})
    r.sadd("s", "x", "y")


def _shaped(replies: list[object]) -> list[object]:
    """The replies as the read side uses them: hashes as mappings, members sorted."""
    return [
        wire.as_hash(replies[0]),
        wire.as_hash(replies[1]),
        replies[2],
        sorted(replies[3]),  # type: ignore[call-overload]
        sorted(replies[4]),  # type: ignore[call-overload]
    ]


@pytest.mark.parametrize("protocol", [2, 3])
def test_replies_read_as_a_pipelines_do(r: redis.Redis, redis_url: str, protocol: int) -> None:
    """Over RESP2 (read by :func:`wire.execute` itself) and RESP3 (a pipeline), the same
    hashes, fields and members come back, in the order asked."""
    _seed(r)
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    try:
        got = _shaped(wire.execute(client, COMMANDS))
    finally:
        client.close()
    assert got == [{b"a": b"1", b"b": b"2"}, {}, [b"1", None], [b"x", b"y"], []]


def test_an_error_reply_raises_and_leaves_no_reply_unread(r: redis.Redis) -> None:
    """A command the server refuses raises ``ResponseError``; the next batch on the same client
    reads its own replies, not the ones left behind."""
    _seed(r)
    r.set("text", "not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        wire.execute(r, [("HGETALL", "text"), *COMMANDS])
    assert _shaped(wire.execute(r, COMMANDS))[0] == {b"a": b"1", b"b": b"2"}


def test_a_connection_the_server_dropped_is_retried(r: redis.Redis, redis_url: str) -> None:
    """A pooled connection the server closed is reconnected under the client's retry policy,
    as for the client's own commands."""
    _seed(r)
    client = redis.Redis.from_url(redis_url)
    try:
        client_id = client.client_id()
        r.client_kill_filter(_id=client_id)
        assert _shaped(wire.execute(client, COMMANDS))[3] == [b"x", b"y"]
        assert client.client_id() != client_id
    finally:
        client.close()
