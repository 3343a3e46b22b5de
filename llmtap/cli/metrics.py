"""The ``llmtap metrics`` command: ``GET /metrics`` alone, for Prometheus, on uvicorn.

It binds 127.0.0.1 unless told otherwise; like ``llmtap serve``, any other address needs
``LLMTAP_API_TOKEN``, which every scrape must then carry as a bearer token.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Final

from llmtap import listen
from llmtap.cli import common, extras
from llmtap.settings import Settings, SettingsError, redact_url

DEFAULT_PORT: Final = 9464


def add_parser(subparsers: Any) -> None:
    """Register ``llmtap metrics``."""
    parser = subparsers.add_parser(
        "metrics", help="Prometheus /metrics only", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument("--budget", type=float, help="monthly budget (USD) for llmtap_budget_*")
    common.add_url(parser).set_defaults(func=_metrics)


def _metrics(args: argparse.Namespace) -> int:
    extras.require("metrics", "llmtap metrics")
    import uvicorn

    from llmtap.connectors.http import metrics_app
    from llmtap.connectors.prometheus import MetricsConfig

    try:
        token = listen.required_token(args.host, os.environ.get(listen.TOKEN_ENV) or None)
    except SettingsError as exc:
        print(f"llmtap: metrics: {exc}", file=sys.stderr)
        return 2
    url = common.redis_url(args)
    client = common.connect(url)
    config = MetricsConfig.from_settings(Settings.from_env(os.environ), args.budget)
    app = metrics_app(client, config, token)
    where = f"http://{args.host}:{args.port}/metrics"
    suffix = " (token required)" if token else ""
    print(f"llmtap: metrics on {where} from {redact_url(url)}{suffix}", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        client.close()
    return 0
