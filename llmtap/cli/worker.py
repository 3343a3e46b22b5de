"""The ``llmtap worker`` and ``llmtap up`` commands.

``llmtap worker NAME`` runs one worker (see :data:`registry.WORKERS`), ``llmtap worker health
NAME`` exits 0 when the group has a fresh heartbeat and 1 otherwise, ``llmtap worker stats``
prints counters, lag and the DLQ size, and ``llmtap up`` runs every worker in one process on
LLMTAP_REDIS_URL (or on an embedded Valkey when it is unset).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import redis

from llmtap.cli import extras
from llmtap.consumers import service
from llmtap.consumers.registry import WORKERS, spec
from llmtap.consumers.runtime.config import ENGINES, RuntimeConfig
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.embedded import redis_url_or_embedded
from llmtap.read import health
from llmtap.settings import Settings, redact_url

STATS_COLUMNS: tuple[str, ...] = ("group", "processed", "lag", "pending", "consumers")
STATS_COLUMNS += ("live_consumers", "dlq", "reclaimed", "duplicates", "conflicts")


def add_parsers(subparsers: Any) -> None:
    """Register ``worker`` (with ``health`` and ``stats``) and ``up``."""
    worker = subparsers.add_parser("worker", help="run or inspect one stream worker")
    actions = worker.add_subparsers(dest="worker_command", required=True, metavar="NAME")
    for name, item in WORKERS.items():
        run = actions.add_parser(name, help=f"run the {name} worker: {item.summary}")
        _add_run_options(run)
        run.set_defaults(func=lambda args, name=name: _run([name], args))
    check = actions.add_parser("health", help="exit 0 if the worker's group has a live consumer")
    check.add_argument("name", choices=sorted(WORKERS), metavar="NAME")
    check.add_argument("--max-age", type=float, help="seconds (default: the heartbeat TTL)")
    check.add_argument("--this-host", action="store_true", help="only consumers of this host")
    _add_url(check)
    check.set_defaults(func=_health)
    stats = actions.add_parser("stats", help="counters, lag and DLQ size of every worker")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    _add_url(stats)
    stats.set_defaults(func=_stats)
    up = subparsers.add_parser("up", help="run every worker (embedded Valkey if no Redis URL)")
    _add_run_options(up)
    up.set_defaults(func=lambda args: _run(list(WORKERS), args))


def _add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="Redis URL (default: LLMTAP_REDIS_URL)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    _add_url(parser)
    parser.add_argument("--burst", action="store_true", help="stop once the stream is drained")
    parser.add_argument("--engine", choices=ENGINES, help="default: LLMTAP_WORKER_ENGINE")


def _run(names: Sequence[str], args: argparse.Namespace) -> int:
    extras.require("workers", "up" if args.command == "up" else f"worker {names[0]}")
    environ = dict(os.environ)  # read once: everything below gets this snapshot
    settings = Settings.from_env(environ)
    runtime = RuntimeConfig.from_env(environ)
    if args.engine:
        runtime = dataclasses.replace(runtime, engine=args.engine)
    url, server = redis_url_or_embedded(args.url or settings.redis_url)
    print(f"llmtap: {', '.join(names)} on {redact_url(url)}", flush=True)
    try:
        ctx = WorkerContext.from_environ(url, environ, settings=settings, runtime=runtime)
        results = asyncio.run(_serve(ctx, names, burst=args.burst))
    finally:
        if server is not None:
            server.stop()
    for stats in results:
        print(f"llmtap: {stats.worker}: {stats.processed} events, {stats.dead_letters} to DLQ")
    return 0


async def _serve(
    ctx: WorkerContext, names: Sequence[str], *, burst: bool
) -> list[service.WorkerStats]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return list(await asyncio.gather(*(service.run(ctx, n, stop, burst=burst) for n in names)))


def _client(args: argparse.Namespace) -> redis.Redis | None:
    url = args.url or Settings.from_env(os.environ).redis_url
    return None if url is None else redis.Redis.from_url(url, socket_timeout=5)


def _health(args: argparse.Namespace) -> int:
    client = _client(args)
    if client is None:
        print("unhealthy: LLMTAP_REDIS_URL is not set; nothing to check")
        return 1
    max_age = args.max_age or RuntimeConfig.from_env(os.environ).heartbeat_ttl_s
    try:
        result = health.check(
            client, spec(args.name).group, max_age_s=max_age, this_host=args.this_host
        )
    except redis.RedisError as exc:
        print(f"unhealthy: redis unreachable: {exc}")
        return 1
    finally:
        client.close()
    print(("ok: " if result.healthy else "unhealthy: ") + result.reason)
    return 0 if result.healthy else 1


def _stats(args: argparse.Namespace) -> int:
    client = _client(args)
    if client is None:
        print("llmtap: LLMTAP_REDIS_URL is not set", file=sys.stderr)
        return 1
    try:
        report = {
            **health.stream_stats(client),
            "groups": [health.group_stats(client, item.group) for item in WORKERS.values()],
        }
    except redis.RedisError as exc:
        print(f"llmtap: redis unreachable: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(json.dumps(report) if args.json else _table(report))
    return 0


def _table(report: dict[str, Any]) -> str:
    rows = [list(STATS_COLUMNS)]
    rows += [[_cell(group[column]) for column in STATS_COLUMNS] for group in report["groups"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(STATS_COLUMNS))]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.append(f"stream length {report['stream_length']}, DLQ length {report['dlq_length']}")
    return "\n".join(lines)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Run only these commands (``python -m llmtap.cli.worker worker cost``)."""
    import logging

    parser = argparse.ArgumentParser(prog="llmtap")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
