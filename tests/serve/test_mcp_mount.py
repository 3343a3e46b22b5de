"""``llmtap serve`` mounts the MCP server at /mcp, behind the API's bearer token: a real
``llmtap serve`` process on loopback, driven by the MCP SDK's own client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis

from llmtap import tools
from tests.mcp.helpers import call, http_session
from tests.serve.conftest import Seeded

TOKEN = "serve-mcp-t0ken"


@pytest.fixture
def serve_url(redis_url: str) -> Iterator[str]:
    """A running ``llmtap serve`` with a token on a free loopback port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "LLMTAP_API_TOKEN": TOKEN, "LLMTAP_REDIS_URL": redis_url}
    command = [str(Path(sys.executable).parent / "llmtap"), "serve", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx2.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx2.TransportError:
            pass
        assert time.monotonic() < deadline, "llmtap serve did not become healthy"
        time.sleep(0.05)  # polling a condition with a deadline
    try:
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        if proc.stdout:
            proc.stdout.close()


def test_mcp_without_the_token_is_401(serve_url: str) -> None:
    """A request to /mcp without the bearer token is refused like an API request."""
    got = httpx2.post(
        f"{serve_url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream"},
        timeout=30,
    )
    assert got.status_code == 401


async def test_mcp_tools_through_serve(r: redis.Redis, serve_url: str, seeded: Seeded) -> None:
    """With the token, the SDK client lists the nine tools and reads the exact status."""
    async with http_session(f"{serve_url}/mcp", TOKEN) as session:
        names = {t.name for t in (await session.list_tools()).tools}
        status = await call(session, "get_profiling_status")
    assert {"get_profiling_status", "get_cost_analysis_data", "reset_profiling_metrics"} <= names
    want = tools.get_profiling_status(r)
    assert status["statistics"]["total_calls"] == want["statistics"]["total_calls"] > 0
