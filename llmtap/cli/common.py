"""The shell every ``llmtap`` command shares: the ``--url``/``--json`` options, which Redis a
command talks to, running a read command with its errors, JSON output and rich tables."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

import redis

from llmtap.settings import Settings, SettingsError

DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"

#: A read command: takes the client and the parsed arguments, returns the JSON-ready result
#: (printing tables itself unless ``--json``), or None when it printed everything itself.
Handler = Callable[[redis.Redis, argparse.Namespace], Any]


# --- options and the server ------------------------------------------------------------------


def add_url(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--url`` to ``parser``; return the parser."""
    parser.add_argument("--url", help="Redis URL (default: LLMTAP_REDIS_URL)")
    return parser


def add_json(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--json`` to ``parser``; return the parser."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def redis_url(args: argparse.Namespace) -> str:
    """Return ``--url``, else ``LLMTAP_REDIS_URL``, else a local Redis."""
    return required_url(args, DEFAULT_URL)


def required_url(args: argparse.Namespace, default: str | None = None) -> str:
    """Return ``--url``, else ``LLMTAP_REDIS_URL``, else ``default``.

    Raises SettingsError when none is given.
    """
    url = args.url or Settings.from_env().redis_url or default
    if not url:
        raise SettingsError("LLMTAP_REDIS_URL: required (or --url)")
    return url


def connect(url: str) -> redis.Redis:
    """Return a client for ``url`` (redis-py connects on the first command)."""
    return redis.Redis.from_url(url)


# --- read commands ---------------------------------------------------------------------------


def add_command(subparsers: Any, name: str, summary: str, handler: Handler) -> Any:
    """Register a read command with ``--url`` and ``--json`` that runs ``handler``."""
    parser = subparsers.add_parser(name, help=summary, description=summary)
    add_json(add_url(parser))
    parser.set_defaults(func=lambda args: run(handler, args))
    return parser


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Run ``handler`` on a client for the command's server; return the exit code.

    1 when Redis cannot be reached, 2 for a bad argument (a ValueError), else 0; the result
    is printed as JSON with ``--json``.
    """
    client = connect(redis_url(args))
    try:
        result = handler(client, args)
    except redis.ConnectionError as exc:
        print(f"llmtap: cannot reach Redis: {exc}", file=sys.stderr)
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
