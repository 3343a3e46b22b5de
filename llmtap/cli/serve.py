"""The ``llmtap serve`` command: the HTTP API and the web dashboard on uvicorn.

It binds 127.0.0.1 unless told otherwise; any other address needs ``LLMTAP_API_TOKEN`` (the
bearer token every API request must then carry) and is refused without it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Final

from llmtap import listen
from llmtap.cli import common
from llmtap.settings import Settings, SettingsError, redact_url

DEFAULT_PORT: Final = 8765


def add_parsers(subparsers: Any) -> None:
    """Register ``llmtap serve``."""
    parser = subparsers.add_parser(
        "serve", help="HTTP API and web dashboard", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow this origin to call the API from a browser (repeatable; default none)",
    )
    parser.add_argument("--budget", type=float, help="monthly budget (USD) for the overview")
    parser.add_argument("--cache-ttl", type=float, default=2.0, help="seconds (default 2)")
    parser.add_argument(
        "--bucket-cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep decoded closed buckets in memory (a late write into a bucket closed 5+ min"
        " shows within 15 min; default on)",
    )
    common.add_url(parser).set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    token = environ.get(listen.TOKEN_ENV) or None
    try:
        import uvicorn

        from llmtap.read.bucketcache import BucketCache
        from llmtap.serve import auth
        from llmtap.serve.app import create_app
        from llmtap.serve.redact import secrets_in
    except ImportError as exc:
        print(
            f"llmtap: serve needs the serve extra (pip install 'llmtap[serve]'): {exc}",
            file=sys.stderr,
        )
        return 2
    try:
        token = listen.required_token(args.host, token)
    except SettingsError as exc:
        print(f"llmtap: serve: {exc}", file=sys.stderr)
        return 2
    loopback = listen.is_loopback(args.host)
    url = common.redis_url(args)
    client = common.connect(url)
    settings = Settings.from_env(environ)
    mounts = [*_mcp(client, url, token, args.host), *_metrics(client, token, settings, args.budget)]
    app = create_app(
        client,
        token=token,
        settings=settings,
        secrets=secrets_in({**environ, "_url": url}),
        cors_origins=args.cors_origin,
        allowed_hosts=auth.LOOPBACK_HOSTS if loopback else None,
        cache_ttl_s=args.cache_ttl,
        monthly_budget_usd=args.budget,
        mounts=mounts,
        buckets=BucketCache() if args.bucket_cache else None,
        reads=_plugin_reads(),
    )
    where = f"http://{args.host}:{args.port}/"
    print(
        f"llmtap: serving {where} on {redact_url(url)}" + (" (token required)" if token else ""),
        flush=True,
    )
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        client.close()
    return 0


def _mcp(client: Any, url: str, token: str | None, host: str) -> list[Any]:
    """The MCP server at /mcp (same token rule as the API), or none without the mcp extra."""
    try:
        from llmtap.mcpserver.http import serve_mount
    except ImportError:
        print("llmtap: serve: /mcp is off: pip install 'llmtap[mcp]'", file=sys.stderr)
        return []
    return [serve_mount(client, url, token, host)]


def _metrics(client: Any, token: str | None, settings: Settings, budget: float | None) -> list[Any]:
    """Prometheus /metrics (the same token as the API), or none without the metrics extra."""
    try:
        from llmtap.connectors.http import PATH, MetricsEndpoint
        from llmtap.connectors.prometheus import MetricsConfig
    except ImportError:
        print("llmtap: serve: /metrics is off: pip install 'llmtap[metrics]'", file=sys.stderr)
        return []
    config = MetricsConfig.from_settings(settings, budget)
    return [(PATH, MetricsEndpoint(client, config, token), None)]


def _plugin_reads() -> list[Any]:
    """The plugins' read functions (``llmtap.reads``); one line for each that cannot load."""
    from llmtap.read import plugins

    found = plugins.discover()
    for problem in found.problems:
        print(f"llmtap: serve: {problem} (not served)", file=sys.stderr)
    return list(found.reads)
