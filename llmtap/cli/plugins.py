"""Plugin read commands: each ``llmtap.reads`` entry point becomes ``llmtap <name>`` with its
arguments, ``--url`` and ``--json`` (see :mod:`llmtap.read.plugins`). A plugin read that cannot
load is reported in one line on stderr and the other commands work as before."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import redis

from llmtap.cli import common
from llmtap.read.params import BadArgument, Param
from llmtap.read.plugins import PluginRead, discover

_TYPES: dict[str, type] = {"number": float, "integer": int, "string": str}


def add_parsers(subparsers: Any) -> None:
    """Register every loadable plugin read; report the others on stderr."""
    found = discover(reserved=frozenset(subparsers.choices))
    for problem in found.problems:
        print(f"llmtap: {problem}", file=sys.stderr)
    for read in found.reads:
        parser = common.add_command(subparsers, read.name, read.summary, _handler(read))
        for param in read.params:
            _add_argument(parser, param)


def _add_argument(parser: argparse.ArgumentParser, param: Param) -> None:
    flag = "--" + param.name.replace("_", "-")
    shown = "" if param.default is None else f" (default {param.default})"
    if param.type == "boolean":
        parser.add_argument(flag, dest=param.name, action=argparse.BooleanOptionalAction,
                            default=param.default, help=param.description)  # fmt: skip
    else:
        parser.add_argument(flag, dest=param.name, type=_TYPES[param.type],
                            default=param.default, help=param.description + shown)  # fmt: skip


def _handler(read: PluginRead) -> Any:
    def handle(client: redis.Redis, args: argparse.Namespace) -> Any:
        values = {p.name: _parsed(p, getattr(args, p.name)) for p in read.params}
        result = read.read(client, values, time.time())
        if not args.json:
            common.print_json(result)  # a plugin read has no table: JSON either way
        return result

    return handle


def _parsed(param: Param, value: Any) -> Any:
    """Return ``value`` checked as the API checks it (bounds, choices); a ValueError naming the
    option otherwise."""
    if value is None:
        return value
    try:
        return param.parse(value)
    except BadArgument as exc:
        flag = "--" + param.name.replace("_", "-")
        raise ValueError(f"{flag}: {str(exc).removeprefix(param.name + ': ')}") from None
