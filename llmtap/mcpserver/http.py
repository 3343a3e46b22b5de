"""The MCP server over streamable HTTP: the ASGI app and the lifespan it needs, a bearer-token
check as a small ASGI middleware (for ``llmtap serve`` too), and a minimal uvicorn runner.

Mounted inside another Starlette app, the session manager's ``run()`` must be entered in the
outer app's lifespan (``McpHttpApp.lifespan``), or every request fails.
"""

from __future__ import annotations

import hmac
import json
import socket
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final

from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

from llmtap.listen import required_token

MCP_PATH: Final = "/mcp"


class BearerTokenMiddleware:
    """Refuse HTTP requests without ``Authorization: Bearer <token>`` (401, JSON body).

    With ``token`` None every request passes (loopback without a token configured).
    Lifespan and other non-HTTP scopes always pass. The comparison is constant-time.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self._expected = None if token is None else f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._expected is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        got = dict(scope.get("headers") or []).get(b"authorization", b"")
        if hmac.compare_digest(got, self._expected):
            await self.app(scope, receive, send)
            return
        await _unauthorized(send, "missing bearer token" if not got else "wrong bearer token")


async def _unauthorized(send: Send, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b'Bearer realm="llmtap"'),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class McpHttpApp:
    """The streamable HTTP ASGI app (serving ``path``) and the lifespan its host must run."""

    app: ASGIApp
    lifespan: Callable[[], AbstractAsyncContextManager[None]]
    path: str = MCP_PATH


def http_app(server: MCPServer, *, path: str = MCP_PATH, host: str = "127.0.0.1") -> McpHttpApp:
    """Return the streamable HTTP app of ``server`` and the lifespan to enter around it.

    Served alone (uvicorn), the app's own lifespan runs the session manager; mounted in
    another app, enter ``lifespan()`` in that app's lifespan instead. ``host`` is the address
    the listener binds, for the SDK's DNS-rebinding protection.
    """
    starlette = server.streamable_http_app(streamable_http_path=path, host=host)
    return McpHttpApp(starlette, server.session_manager.run, path)


def serve_mount(
    client: Any, url: str, token: str | None, host: str
) -> tuple[str, ASGIApp, Callable[[], AbstractAsyncContextManager[None]]]:
    """Return the ``(path, app, lifespan)`` that ``llmtap serve`` mounts at ``/mcp``: the server
    on ``client`` behind the same bearer-token rule as the HTTP API.

    Raises SettingsError for a bad MCP setting (e.g. LLMTAP_MCP_READONLY's neighbours).
    """
    from llmtap.mcpserver.server import ServerConfig, build_server
    from llmtap.settings import redact_url

    mounted = http_app(build_server(client, ServerConfig.from_env(redact_url(url))), host=host)
    return mounted.path, BearerTokenMiddleware(mounted.app, token), mounted.lifespan


def uvicorn_server(
    server: MCPServer, host: str, port: int, token: str | None
) -> Any:  # uvicorn.Server
    """Return a uvicorn server for ``server`` at ``host:port`` behind the bearer check.

    Raises SettingsError when ``host`` is off loopback without a token.
    """
    import uvicorn

    checked = required_token(host, token)
    app = BearerTokenMiddleware(http_app(server, host=host).app, checked)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    return uvicorn.Server(config)


def run_http(server: MCPServer, host: str, port: int, token: str | None) -> None:
    """Serve ``server`` over streamable HTTP at ``http://host:port/mcp`` until interrupted."""
    runner = uvicorn_server(server, host, port, token)
    runner.run()


def free_port(host: str = "127.0.0.1") -> socket.socket:
    """Return a listening socket on a free port of ``host`` (to hand to uvicorn)."""
    return socket.create_server((host, 0))
