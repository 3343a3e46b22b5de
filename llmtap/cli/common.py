"""The shell every ``llmtap`` command shares: the ``--url``/``--json`` options, which Redis a
command talks to (one resolution for all), one-line errors, JSON output and rich tables."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

import redis

from llmtap.cli import extras
from llmtap.connection import sync_client
from llmtap.consumers.runtime.context import validate
from llmtap.embedded import EmbeddedServerError, default_redis_url
from llmtap.settings import Settings, SettingsError, redact_url, url_secrets

CONNECT_TIMEOUT_S: Final = 5.0
READ_TIMEOUT_S: Final = 30.0

#: A read command: takes the client and the parsed arguments, returns the JSON-ready result
#: (printing tables itself unless ``--json``), or None when it printed everything itself.
Handler = Callable[[redis.Redis, argparse.Namespace], Any]


# --- options and the server ------------------------------------------------------------------


def add_url(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--url`` to ``parser``; return the parser."""
    parser.add_argument(
        "--url",
        help="Redis URL (default: LLMTAP_REDIS_URL, else the server a running `llmtap up` "
        "recorded, else redis://127.0.0.1:6379/0)",
    )
    return parser


def add_json(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--json`` to ``parser``; return the parser."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def configured_url(args: argparse.Namespace) -> str | None:
    """Return ``--url``, else ``LLMTAP_REDIS_URL``, else None. Raises SettingsError for a bad
    ``LLMTAP_REDIS_URL``."""
    url: str | None = getattr(args, "url", None) or Settings.from_env().redis_url
    return url


def redis_url(args: argparse.Namespace) -> str:
    """Return the server of every command: ``--url``, else ``LLMTAP_REDIS_URL``, else the
    server a running ``llmtap up`` recorded, else ``redis://127.0.0.1:6379/0``.

    The URL is remembered on ``args`` so an error names the server the command used.
    """
    url = configured_url(args) or default_redis_url()
    use_url(args, url)
    return url


def use_url(args: argparse.Namespace, url: str) -> None:
    """Remember ``url`` as the server this command talks to (for its error messages)."""
    args.server_url = url


def connect(url: str) -> redis.Redis:
    """Return a client for ``url`` (redis-py connects on the first command), with timeouts so a
    server that does not answer fails the command instead of hanging it."""
    return sync_client(url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=READ_TIMEOUT_S)


def client_for(args: argparse.Namespace) -> redis.Redis:
    """Return a client on the command's server (see :func:`redis_url`)."""
    return connect(redis_url(args))


# --- errors ----------------------------------------------------------------------------------


class NotFoundError(LookupError):
    """What a command was asked about does not exist; the message says what."""


def redis_problem(url: str | None, exc: redis.RedisError) -> str:
    """Return one line naming the server (credentials redacted) and what went wrong."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, redis.AuthenticationError) or text.startswith(("WRONGPASS", "NOAUTH")):
        reason = "authentication failed (wrong user or password)"
    elif isinstance(exc, redis.exceptions.InvalidResponse) or "Protocol error" in text:
        reason = "the server does not speak the Redis protocol (is this URL a Redis server?)"
    elif isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        reason = f"unreachable ({text})"
    else:
        reason = text
    for secret in url_secrets(url):
        reason = reason.replace(secret, "***")
    return f"cannot use Redis at {redact_url(url)}: {reason}"


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; return its exit code. Bad settings (2), Redis that cannot be
    used (1) and an embedded server that cannot start (1) print one line, never a traceback."""
    try:
        validate(os.environ)  # the same checks at start as every worker makes
        code: int = args.func(args)
    except SettingsError as exc:
        print(f"llmtap: bad setting: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"llmtap: {redis_problem(_used_url(args), exc)}", file=sys.stderr)
        return 1
    except EmbeddedServerError as exc:
        print(f"llmtap: {exc}", file=sys.stderr)
        return 1
    except extras.MissingExtra as exc:
        print(f"llmtap: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        missing = extras.from_import_error(exc, args.command)
        if missing is None:
            raise
        print(f"llmtap: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


def _used_url(args: argparse.Namespace) -> str | None:
    url: str | None = getattr(args, "server_url", None)
    if url is None:
        try:
            url = redis_url(args)
        except SettingsError:
            return None
    return url


# --- read commands ---------------------------------------------------------------------------


def add_command(subparsers: Any, name: str, summary: str, handler: Handler) -> Any:
    """Register a read command with ``--url`` and ``--json`` that runs ``handler``."""
    parser = subparsers.add_parser(name, help=summary, description=summary)
    add_json(add_url(parser))
    parser.set_defaults(func=lambda args: run(handler, args))
    return parser


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Run ``handler`` on a client for the command's server; return the exit code.

    1 when Redis cannot be used or the thing asked about does not exist (a NotFoundError;
    with ``--json`` also printed as ``{"error": ...}``), 2 for a bad argument (a ValueError),
    else 0; the result is printed as JSON with ``--json``. Each error is one line.
    """
    client = client_for(args)
    try:
        result = handler(client, args)
    except redis.RedisError as exc:
        print(f"llmtap: {redis_problem(args.server_url, exc)}", file=sys.stderr)
        return 1
    except NotFoundError as exc:
        print(f"llmtap: {exc}", file=sys.stderr)
        if args.json:
            print_json({"error": str(exc)})
        return 1
    except ValueError as exc:
        print(f"llmtap: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()
    if result is not None and args.json:
        print_json(result)
    return 0


# --- output ------------------------------------------------------------------------------


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON with sorted keys (anything else as its string)."""
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def cell(value: Any) -> str:
    """Return a table cell: ``-`` for None, 6 significant digits for floats."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def rich_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
    """Return a rich table of ``rows`` under ``header``."""
    from rich.table import Table

    table = Table(title=title)
    for name in header:
        table.add_column(name)
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    return table


def show(renderable: Any) -> None:
    """Print a rich renderable to standard output."""
    from rich.console import Console

    Console().print(renderable)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a rich table."""
    show(rich_table(title, header, rows))
