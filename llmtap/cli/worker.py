"""The ``llmtap worker`` and ``llmtap up`` commands.

``llmtap worker NAME`` runs one worker (a built-in of :data:`registry.WORKERS` or an installed
plugin of the ``llmtap.workers`` entry-point group), ``llmtap worker --list`` lists them (and
the plugins that cannot load, one line each), ``llmtap worker health NAME`` exits 0 when the
group has a fresh heartbeat and 1 otherwise, ``llmtap worker stats`` prints counters, lag and
the DLQ size, and ``llmtap up`` runs every built-in worker (plus the plugins named with
``--with``, or all of them with ``--with all``) in one process on ``--url``/LLMTAP_REDIS_URL,
or on an embedded Valkey when neither is given: on port 6379 when it is free (the default
every client tries), else on a free port, recorded in :func:`llmtap.embedded.up_file` where
the other commands and the wrapper look. A plugin that cannot load, or fails while running,
is reported in one line and the other workers go on.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from llmtap.cli import common, extras
from llmtap.consumers import registry, service
from llmtap.consumers.registry import WORKERS, spec
from llmtap.consumers.runtime.config import ENGINES, RuntimeConfig
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.embedded import DEFAULT_PORT, EmbeddedValkey, remove_up_file, write_up_file
from llmtap.plugin import PluginError
from llmtap.read import health
from llmtap.settings import Settings, redact_url

log = logging.getLogger(__name__)
STATS_COLUMNS: tuple[str, ...] = ("group", "processed", "lag", "pending", "consumers")
STATS_COLUMNS += ("live_consumers", "dlq", "reclaimed", "duplicates", "conflicts")


def add_parsers(subparsers: Any) -> None:
    """Register ``worker`` (with ``health`` and ``stats``) and ``up``."""
    worker = subparsers.add_parser("worker", help="run or inspect one stream worker")
    worker.add_argument("--list", action="store_true", help="list the workers and plugins")
    worker.set_defaults(func=_list)
    actions = worker.add_subparsers(dest="worker_command", metavar="NAME")
    plugins = registry.plugin_names()  # entry-point names only: nothing is imported here
    for name, item in WORKERS.items():
        run = actions.add_parser(name, help=f"run the {name} worker: {item.summary}")
        _add_run_options(run)
        run.set_defaults(func=lambda args, name=name: _run([name], args, embedded=False))
    for name in plugins:
        run = actions.add_parser(name, help=f"run the {name} plugin worker")
        _add_run_options(run)
        run.set_defaults(func=lambda args, name=name: _run([name], args, embedded=False))
    check = actions.add_parser("health", help="exit 0 if the worker's group has a live consumer")
    check.add_argument("name", choices=sorted([*WORKERS, *plugins]), metavar="NAME")
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
    up.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"embedded Valkey's port when it is free (default {DEFAULT_PORT}; 0: any free port)",
    )
    up.add_argument(
        "--with",
        dest="plugins",
        action="append",
        default=[],
        metavar="NAME",
        help="also run this installed plugin worker (repeatable; 'all': every one installed)",
    )
    up.set_defaults(func=lambda args: _run(up_workers(os.environ), args, embedded=True))


def up_workers(environ: Mapping[str, str]) -> list[str]:
    """Return the built-in workers ``llmtap up`` runs: all of them, the OTLP exporter only when
    LLMTAP_OTLP_ENDPOINT says where to export."""
    return [name for name in WORKERS if name != "otel" or environ.get("LLMTAP_OTLP_ENDPOINT")]


def _add_url(parser: argparse.ArgumentParser) -> None:
    common.add_url(parser)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    _add_url(parser)
    parser.add_argument("--burst", action="store_true", help="stop once the stream is drained")
    parser.add_argument("--engine", choices=ENGINES, help="default: LLMTAP_WORKER_ENGINE")


def _run(names: Sequence[str], args: argparse.Namespace, *, embedded: bool) -> int:
    extras.require("workers", "up" if args.command == "up" else f"worker {names[0]}")
    names, failed = _loadable([*names, *_wanted_plugins(args)])
    if not names:
        return 2
    environ = dict(os.environ)  # read once: everything below gets this snapshot
    settings = Settings.from_env(environ)
    runtime = RuntimeConfig.from_env(environ)
    if args.engine:
        runtime = dataclasses.replace(runtime, engine=args.engine)
    server = None
    if embedded and not common.configured_url(args):
        server = EmbeddedValkey(args.port or None, fallback=True).start()
        common.use_url(args, server.url)
        url = server.url
    else:
        url = common.redis_url(args)
    print(f"llmtap: {', '.join(names)} on {redact_url(url)}", flush=True)
    if server is not None:
        _announce(server, args.port, environ)
    try:
        ctx = WorkerContext.from_environ(url, environ, settings=settings, runtime=runtime)
        results = asyncio.run(_serve(ctx, names, burst=args.burst))
    finally:
        if server is not None:
            remove_up_file(environ)
            server.stop()
    for stats in results:
        print(f"llmtap: {stats.worker}: {stats.processed} events, {stats.dead_letters} to DLQ")
    return 1 if failed and args.command != "up" else 0


def _wanted_plugins(args: argparse.Namespace) -> list[str]:
    wanted: list[str] = getattr(args, "plugins", [])
    if "all" in wanted:
        return registry.plugin_names()
    return wanted


def _loadable(names: Sequence[str]) -> tuple[list[str], bool]:
    """Return the names that can run and whether any could not: each plugin that cannot load
    is reported in one line on stderr, and the others run."""
    plugins = [name for name in names if registry.is_plugin(name)]
    found = registry.discover(plugins)
    for problem in found.problems:
        print(f"llmtap: {problem.line()}; not started", file=sys.stderr, flush=True)
    good = [name for name in dict.fromkeys(names) if name in found.workers]
    return good, bool(found.problems)


def _announce(server: EmbeddedValkey, wanted: int, environ: dict[str, str]) -> None:
    """Record the embedded server where other commands look, and say how clients find it."""
    path = write_up_file(server.url, environ)
    if server.port == DEFAULT_PORT:
        print(
            f"llmtap up: embedded Valkey on the default address {server.url}: llmtap commands "
            "and applications find it with no configuration",
            flush=True,
        )
        return
    why = f"port {wanted} is taken" if wanted else "any free port was asked for"
    print(
        f"llmtap up: {why}, so the embedded Valkey is on {server.url}; llmtap on this machine "
        f"finds it through {path}; elsewhere set:\nexport LLMTAP_REDIS_URL={server.url}",
        flush=True,
    )


async def _serve(
    ctx: WorkerContext, names: Sequence[str], *, burst: bool
) -> list[service.WorkerStats]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = [asyncio.create_task(_run_one(ctx, n, stop, burst=burst)) for n in names]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # One worker failed: stop the others and wait for them, so the failure is reported
        # once (by the caller) instead of as tracebacks of abandoned tasks at loop shutdown.
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _run_one(
    ctx: WorkerContext, name: str, stop: asyncio.Event, *, burst: bool
) -> service.WorkerStats:
    """Run one worker; a plugin that fails is reported in one line and stops alone."""
    if not registry.is_plugin(name):
        return await service.run(ctx, name, stop, burst=burst)
    try:
        return await service.run(ctx, name, stop, burst=burst)
    except Exception as exc:  # plugin code may raise anything: it must not stop the others
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        log.error("plugin %s stopped: %s: %s", name, type(exc).__name__, reason)
        return service.WorkerStats(name, "-", ctx.runtime.engine, 0, 0, 0, 0, 0, 0, 0, 0.0)


def _list(args: argparse.Namespace) -> int:
    if not args.list:
        print("llmtap worker: name a worker, or --list (see --help)", file=sys.stderr)
        return 2
    found = registry.discover()
    rows = [["worker", "group", "kind", "summary"]]
    for name, item in found.workers.items():
        rows.append([name, item.group, "plugin" if name in found.plugins else "built-in",
                     item.summary])  # fmt: skip
    for problem in found.problems:
        rows.append([problem.name, "-", "broken", problem.reason])
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)), row[3]]))
    return 0


def _health(args: argparse.Namespace) -> int:
    client = common.client_for(args)
    max_age = args.max_age or RuntimeConfig.from_env(os.environ).heartbeat_ttl_s
    try:
        group = spec(args.name).group
    except PluginError as exc:
        client.close()
        print(f"unhealthy: {exc}")
        return 1
    try:
        result = health.check(client, group, max_age_s=max_age, this_host=args.this_host)
    except redis.RedisError as exc:
        print(f"unhealthy: {common.redis_problem(args.server_url, exc)}")
        return 1
    finally:
        client.close()
    print(("ok: " if result.healthy else "unhealthy: ") + result.reason)
    return 0 if result.healthy else 1


def _stats(args: argparse.Namespace) -> int:
    client = common.client_for(args)
    try:
        report = {
            **health.stream_stats(client),
            "groups": [
                health.group_stats(client, item.group)
                for item in registry.discover().workers.values()
            ],
        }
    except redis.RedisError as exc:
        print(f"llmtap: {common.redis_problem(args.server_url, exc)}", file=sys.stderr)
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
    return common.dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
