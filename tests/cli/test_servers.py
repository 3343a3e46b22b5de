"""Which server every command talks to, how `llmtap up` is found, and one-line errors with the
password redacted for an unreachable URL, a server that is not Redis and a wrong password."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from llmtap import cli, keys
from llmtap.cli import common
from llmtap.cli.main import build_parser
from llmtap.consumers import registry
from llmtap.consumers.registry import WORKERS
from llmtap.embedded import (
    DEFAULT_URL,
    EmbeddedValkey,
    default_redis_url,
    discovered_url,
    up_file,
    write_up_file,
)
from llmtap.read import health
from llmtap.settings import redact_url
from tests.consumer_helpers import wait_for

SECRET = "s3cret-pw"  # the password every bad URL carries, never to be printed
RIGHT = "right-pw"  # the password of the server that wants one
LLMTAP = [str(Path(sys.executable).with_name("llmtap"))]  # the installed command


# --- bad servers -----------------------------------------------------------------------------


class _NotRedis(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the command's output, not the server's."""


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    """An HTTP server on loopback: something that answers, but not in the Redis protocol."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotRedis)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def locked() -> Iterator[EmbeddedValkey]:
    """A Valkey that requires the password RIGHT."""
    with EmbeddedValkey() as server:
        client = redis.Redis.from_url(server.url)
        client.config_set("requirepass", RIGHT)
        client.close()
        yield server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.fixture(params=["unreachable", "not-redis", "wrong-password"])
def bad_url(request: pytest.FixtureRequest, http_port: int, locked: EmbeddedValkey) -> str:
    """A URL carrying SECRET that no command can use, for each of the three ways to fail."""
    port = {
        "unreachable": _closed_port,
        "not-redis": lambda: http_port,
        "wrong-password": lambda: locked.port,
    }[request.param]()
    return f"redis://default:{SECRET}@127.0.0.1:{port}/0"


# --- walking the parser ----------------------------------------------------------------------


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Any]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaves(sub, (*path, name))
            return
    yield path, parser


def _argv(path: tuple[str, ...], parser: argparse.ArgumentParser, url: str) -> list[str]:
    """The command with a value for every required argument, on ``url``."""
    argv = list(path)
    for action in parser._actions:
        if not action.option_strings and action.dest != "help":
            argv.append(str(sorted(action.choices)[0]) if action.choices else "x")
        elif action.required:
            argv += [action.option_strings[0], "label=value"]
    return [*argv, "--url", url]


def redis_commands(url: str) -> list[list[str]]:
    """Every subcommand that talks to Redis (has ``--url``), except the long-running ones."""
    return [
        _argv(path, parser, url)
        for path, parser in _leaves(build_parser())
        if "--url" in parser._option_string_actions and not is_runner(path)
    ]


def is_runner(path: tuple[str, ...]) -> bool:
    """``up``, ``worker NAME``, ``serve``, ``metrics`` and ``mcp`` run until stopped (and retry,
    or answer 503 / tool errors while Redis is away): they are bounded instead."""
    if path in (("up",), ("serve",), ("metrics",), ("mcp",)):
        return True
    return path[0] == "worker" and (path[1] in WORKERS or path[1] in registry.plugin_names())


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a child: no LLMTAP_REDIS_URL, its own place for the up file."""
    env = {k: v for k, v in os.environ.items() if k != "LLMTAP_REDIS_URL"}
    return {**env, "XDG_RUNTIME_DIR": str(tmp), **extra}


def test_the_walk_finds_every_command_that_talks_to_redis() -> None:
    """The parametrized commands include the read commands, alerts, worker and demo."""
    found = {" ".join(argv[:2]) for argv in redis_commands("redis://x")}
    expected = {"status --url", "cost --url", "session x", "alerts list", "alerts show"}
    expected |= {"alerts silences", "alerts expire", "worker stats", "worker health", "demo --url"}
    assert expected <= found, found


# --- item 9: one line, URL named and redacted, non-zero, for every command ---------------------


def test_every_command_fails_in_one_line_on_a_bad_server(bad_url: str, tmp_path: Path) -> None:
    """Each command prints one line naming the URL with its password redacted, no traceback,
    and exits non-zero."""
    commands = redis_commands(bad_url)
    children = [
        subprocess.Popen(
            [*LLMTAP, *argv],
            env=clean_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for argv in commands
    ]
    for argv, child in zip(commands, children, strict=True):
        out, _ = child.communicate(timeout=120)
        shown = " ".join(argv[:-2])
        assert child.returncode != 0, (shown, out)
        assert "Traceback" not in out and SECRET not in out, (shown, out)
        assert len(out.strip().splitlines()) == 1, (shown, out)
        assert redact_url(bad_url) in out, (shown, out)


@pytest.mark.parametrize(
    "argv",
    [["worker", "cost"], ["up"], ["serve", "--port", "0"]],
    ids=["worker", "up", "serve"],
)
def test_runners_never_print_a_traceback_or_the_password(
    argv: list[str], bad_url: str, tmp_path: Path
) -> None:
    """``worker NAME``, ``up`` (which may retry) and ``serve`` print no traceback and no
    password in what they print before they exit or are stopped."""
    log = tmp_path / "out.log"
    with log.open("w") as out:
        child = subprocess.Popen(
            [*LLMTAP, *argv, "--url", bad_url],
            env=clean_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Bounded: until it exits, or has said something after its start-up line.
        wait_for(lambda: child.poll() is not None or len(log.read_text().splitlines()) >= 2, 60)
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    text = log.read_text()
    assert "Traceback" not in text and SECRET not in text, text
    assert redact_url(bad_url) in text.splitlines()[0], text


# --- item 10: every credential form is redacted in what a worker prints ----------------------


@pytest.mark.parametrize(
    "form",
    ["redis://default:{pw}@127.0.0.1:{port}/0", "redis://127.0.0.1:{port}/0?password={pw}"],
    ids=["userinfo", "query"],
)
def test_a_worker_never_prints_its_password(
    form: str, locked: EmbeddedValkey, tmp_path: Path
) -> None:
    """A worker run with the password in the userinfo or in ``?password=`` prints its
    start-up and service lines with ``***`` in its place."""
    url = form.format(pw=RIGHT, port=locked.port)
    done = subprocess.run(
        [*LLMTAP, "worker", "cost", "--burst", "--url", url],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert RIGHT not in out, out
    assert out.count("***") >= 2, out  # the start-up line and the service log line


# --- item 8: one resolution for every command --------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "env", "up", "expected"),
    [
        ("redis://flag/0", "redis://env/0", True, "redis://flag/0"),
        (None, "redis://env/0", True, "redis://env/0"),
        (None, None, True, "up"),
        (None, None, False, DEFAULT_URL),
    ],
    ids=["--url", "LLMTAP_REDIS_URL", "up-file", "default"],
)
def test_the_server_is_url_then_env_then_up_then_default(
    flag: str | None,
    env: str | None,
    up: bool,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
) -> None:
    """``--url`` wins over LLMTAP_REDIS_URL, which wins over a running `up`'s file, which wins
    over redis://127.0.0.1:6379/0."""
    monkeypatch.delenv("LLMTAP_REDIS_URL", raising=False)
    if env:
        monkeypatch.setenv("LLMTAP_REDIS_URL", env)
    if up:
        write_up_file(redis_url)  # this (live) process as the `up`
    got = common.redis_url(argparse.Namespace(url=flag))
    assert got == (redis_url if expected == "up" else expected)


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "stats", "--json"],
        ["worker", "health", "cost"],
        ["alerts", "list"],
        ["alerts", "silences"],
        ["alerts", "silence", "-m", "model=gpt-4o"],
        ["status", "--json"],
    ],
    ids=" ".join,
)
def test_commands_run_without_any_url_setting(
    argv: list[str], r: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With neither --url nor LLMTAP_REDIS_URL, worker stats/health and alerts reach the
    server the default resolution names (here a running `up`'s file) instead of refusing."""
    monkeypatch.delenv("LLMTAP_REDIS_URL", raising=False)
    write_up_file(redis_url)
    r.set("llmtap:probe", "1")
    expected = 1 if argv[:2] == ["worker", "health"] else 0  # no heartbeat there: unhealthy
    assert cli.main(argv) == expected
    if argv[:3] == ["alerts", "silence", "-m"]:
        assert r.zcard(keys.SILENCES) == 1


# --- item 7: `llmtap up` is found with no configuration --------------------------------------


def test_commands_find_a_running_up_with_no_configuration(tmp_path: Path) -> None:
    """`llmtap up` on a taken port prints the export line and records its URL; then status,
    dashboard, worker health and the wrapper's default URL find it; the record goes at exit."""
    env = clean_env(tmp_path)
    log = tmp_path / "up.log"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with log.open("w") as out:
            up = subprocess.Popen(
                [*LLMTAP, "up", "--port", str(taken)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(lambda: "export LLMTAP_REDIS_URL=" in log.read_text() or up.poll(), 60)
            url = log.read_text().partition("export LLMTAP_REDIS_URL=")[2].split()[0]
            assert f":{taken}/" not in url
            assert discovered_url(env) == url == default_redis_url(env)
            client = redis.Redis.from_url(url)
            wait_for(lambda: health.check(client, keys.GROUP_COST, max_age_s=30).healthy, 60)
            client.close()
            for argv in (["worker", "health", "cost"], ["status", "--json"],
                         ["dashboard", "--once", "--json"]):  # fmt: skip
                done = subprocess.run(
                    [*LLMTAP, *argv], env=env, capture_output=True, text=True, timeout=120
                )
                assert done.returncode == 0, (argv, done.stdout, done.stderr)
            assert (
                '"workers_seen": 6'
                in subprocess.run(
                    [*LLMTAP, "status", "--json"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                ).stdout
            )
        finally:
            up.send_signal(signal.SIGTERM)
            assert up.wait(timeout=60) == 0, log.read_text()
    assert not up_file(env).exists()
    assert default_redis_url(env) == DEFAULT_URL
