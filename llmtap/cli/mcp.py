"""``llmtap mcp``: the MCP server on stdio (what desktop MCP clients launch), or with
``--http`` a minimal streamable HTTP listener at ``http://HOST:PORT/mcp``.

The server is ``--url``, else ``LLMTAP_REDIS_URL``, else a local Redis. ``--readonly`` (or
``LLMTAP_MCP_READONLY=1``) hides every tool that writes. Over HTTP, a bearer token
(``LLMTAP_API_TOKEN``) is checked when set, and required off loopback.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from llmtap.cli import common
from llmtap.connection import sync_client


def add_parser(subparsers: Any) -> None:
    """Register ``llmtap mcp``."""
    parser = subparsers.add_parser(
        "mcp", help="MCP server for agents (stdio; --http for streamable HTTP)"
    )
    common.add_url(parser)
    parser.add_argument("--readonly", action="store_true", default=None, help="no write tools")
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP, not stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    parser.set_defaults(func=_run)


def client_for(url: str) -> redis.Redis:
    """Return a client that fails fast when Redis is down (a tool error, not a hung call)."""
    return sync_client(
        url,
        socket_connect_timeout=3,
        socket_timeout=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.1), 1),
    )


def _run(args: argparse.Namespace) -> int:
    from llmtap.listen import TOKEN_ENV
    from llmtap.mcpserver import ServerConfig, build_server
    from llmtap.mcpserver.http import run_http

    url = common.redis_url(args)
    config = ServerConfig.from_env(url, readonly=args.readonly)
    server = build_server(client_for(url), config)
    if args.http:
        run_http(server, args.host, args.port, os.environ.get(TOKEN_ENV) or None)
    else:
        server.run("stdio")
    return 0
