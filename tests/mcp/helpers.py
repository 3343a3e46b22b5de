"""Clients for the MCP tests: the SDK's own client over stdio (``llmtap mcp`` as a process) and
over streamable HTTP (uvicorn in a thread on a free loopback port), plus seeded traffic."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import redis
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from llmtap import events, keys
from llmtap.cli.mcp import client_for
from llmtap.mcpserver import ServerConfig, build_server
from llmtap.mcpserver.http import free_port, uvicorn_server
from llmtap.testing import Workload
from tests.consumer_helpers import burst

DAY = 86_400
LLMTAP = str(Path(sys.executable).with_name("llmtap"))


@dataclass
class Seeded:
    """Yesterday's and the last hour's synthetic traffic, with yesterday's exact cost by model."""

    yesterday: str
    yesterday_cost_by_model: dict[str, int] = field(default_factory=dict)
    recent_calls: int = 0


def seed(r: redis.Redis, url: str, now: float) -> Seeded:
    """Write 1.5k events yesterday (UTC) and 1.5k in the last 90 minutes, drain them with the
    cost, latency and sessions workers; return yesterday's per-model cost from the rollups."""
    today = now - now % DAY
    found = Seeded(time.strftime("%Y-%m-%d", time.gmtime(today - DAY)))
    cost: Counter[str] = Counter()
    old = Workload(21, start=today - DAY + 3600, span_s=3600)
    recent_start = max(today + 1, now - 5400)
    recent = Workload(
        22, start=recent_start, span_s=max(1.0, min(1800.0, (now - recent_start) / 2))
    )
    pipe = r.pipeline(transaction=False)
    for workload, rollups in ((old, cost), (recent, None)):
        for fields in workload.entries(1_500):
            pipe.xadd(keys.EVENTS, fields)  # type: ignore[arg-type]
            for item in events.decode_entry(fields):
                if rollups is not None and isinstance(item, events.RollupEvent):
                    for row in item.rows:
                        rollups[row.model] += row.cost_nanousd
    pipe.execute()
    burst(url, ["cost", "latency", "sessions"])
    found.yesterday_cost_by_model = {m: c for m, c in cost.items() if c}
    found.recent_calls = recent.truth.calls
    return found


def stdio_params(url: str, **env: str) -> StdioServerParameters:
    """``llmtap mcp`` with the Redis URL (and ``env``) passed explicitly: stdio servers do not
    inherit the parent's environment."""
    return StdioServerParameters(
        command=LLMTAP, args=["mcp"], env={"LLMTAP_REDIS_URL": url, "HOME": "/tmp", **env}
    )


@asynccontextmanager
async def stdio_session(url: str, **env: str) -> AsyncIterator[ClientSession]:
    """An initialized client session with ``llmtap mcp`` spawned on stdio."""
    with open(os.devnull, "w") as errlog:
        async with (
            stdio_client(stdio_params(url, **env), errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


@contextmanager
def http_server(url: str, token: str | None = None, **config: Any) -> Iterator[str]:
    """Serve build_server over streamable HTTP on a free loopback port; yield the /mcp URL."""
    server = build_server(client_for(url), ServerConfig(url=url, **config))
    sock = free_port()
    runner = uvicorn_server(server, "127.0.0.1", sock.getsockname()[1], token)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not runner.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)  # polling a condition with a deadline, not waiting for work
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        runner.should_exit = True
        thread.join(10)
        sock.close()


@asynccontextmanager
async def http_session(url: str, token: str | None = None) -> AsyncIterator[ClientSession]:
    """An initialized client session over streamable HTTP, with the bearer token if given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def plain(value: Any) -> Any:
    """``value`` as JSON would carry it, without the keys that name the moment of the call."""
    data = json.loads(json.dumps(value, default=str))
    return _drop(data, {"generated_at"})


def _drop(value: Any, names: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _drop(v, names) for k, v in value.items() if k not in names}
    if isinstance(value, list):
        return [_drop(v, names) for v in value]
    return value


async def call(session: ClientSession, name: str, **arguments: Any) -> Any:
    """Call a tool; return its structured content (asserting it succeeded)."""
    got = await session.call_tool(name, arguments)
    assert not got.is_error, got.content
    return got.structured_content


async def error_text(session: ClientSession, name: str, **arguments: Any) -> str:
    """Call a tool that must fail; return its error text."""
    got = await session.call_tool(name, arguments)
    assert got.is_error, got.structured_content
    return " ".join(getattr(block, "text", "") for block in got.content)


def run(coro: Any) -> Any:
    """Run a coroutine to completion (for sync fixtures)."""
    return asyncio.run(coro)


def differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Return where two JSON values differ; floats are equal within 1e-9 relative (sketch
    merges add floats in set order, which differs between processes)."""
    if isinstance(want, dict) and isinstance(got, dict):
        if set(got) != set(want):
            return [f"{path}: keys {sorted(set(got) ^ set(want))}"]
        return [d for k in want for d in differences(got[k], want[k], f"{path}.{k}")]
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{path}: {len(got)} items, want {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want, strict=True))
                for d in differences(g, w, f"{path}[{i}]")]  # fmt: skip
    if isinstance(want, float) and isinstance(got, int | float) and not isinstance(got, bool):
        return (
            []
            if math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
            else [f"{path}: {got} != {want}"]
        )
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]
