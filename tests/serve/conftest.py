"""Fixtures of the serve tests: known traffic in the last hours drained by the real workers,
alerts stepped through the real alert Lua, and the app on a real uvicorn on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn

from llmtap.analyzers.rules import Rule
from llmtap.serve.app import create_app
from llmtap.testing import Workload
from tests.alert_helpers import active
from tests.consumer_helpers import burst, wait_for

#: Where the browser tests saved their screenshots (set by their ``shots`` fixture).
SCREENSHOTS = pytest.StashKey[Path]()
SLOW = Rule("slow", "latency_above", 2.0, group_by=("model",), severity="critical")
WATCH = Rule("watch", "latency_above", 2.0, group_by=("model",), for_s=3600)


@dataclass
class Seeded:
    """What the fixture wrote: the workload (with its ground truth) and the seeding time."""

    workload: Workload
    at: float


def seed_traffic(r: redis.Redis, url: str, seed: int, n: int, start: float) -> Workload:
    """Write ``n`` synthetic events over the hour from ``start`` and drain them."""
    workload = Workload(seed, start=start, span_s=3600, producer_id=f"serve-{seed}")
    workload.write(r, n)
    burst(url, ["cost", "latency", "sessions"])
    return workload


@pytest.fixture
def seeded(r: redis.Redis, redis_url: str) -> Seeded:
    """2k events between 2 h and 1 h ago, one firing alert (slow, gpt-4o) and one pending."""
    now = time.time()
    workload = seed_traffic(r, redis_url, 31, 2_000, now - 2 * 3600)
    active(redis_url, SLOW, {"model": "gpt-4o"}, now - 600, value=3.5)
    active(redis_url, WATCH, {"model": "llama3:8b"}, now - 300, value=2.5)
    return Seeded(workload, now)


def free_socket() -> socket.socket:
    """A listening-ready TCP socket bound to a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ServeThread:
    """uvicorn serving an app in a thread on a free loopback port (``url``), until ``stop``."""

    def __init__(self, app: Any) -> None:
        self.sock = free_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def start(self) -> ServeThread:
        self.thread.start()
        wait_for(lambda: self.server.started, deadline_s=30)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture
def serve(r: redis.Redis) -> Iterator[ServeThread]:
    """The app on the test database, served on loopback (no token, a 1 s cache)."""
    server = ServeThread(create_app(r, cache_ttl_s=1.0)).start()
    yield server
    server.stop()


@pytest.fixture
def http(serve: ServeThread) -> Iterator[httpx.Client]:
    """An HTTP client on the served app."""
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        yield client


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say where the dashboard screenshots are, when the browser tests took any."""
    where = config.stash.get(SCREENSHOTS, None)
    if where is not None:
        terminalreporter.write_line(f"dashboard screenshots: {where}")
