"""A real Prometheus (Debian's ``prometheus``) on loopback scrapes a real ``llmtap serve``
process; its PromQL answers equal the tool functions: the month's cost by model, a quantile,
and ``sum(rate(...))`` after new traffic (within Prometheus's extrapolation)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from llmtap import tools
from llmtap.read import query
from llmtap.read.metrics import month_start
from llmtap.testing import Workload
from tests.connectors.conftest import WINDOW_S
from tests.consumer_helpers import burst, wait_for
from tests.serve.conftest import free_socket, seed_traffic

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="PROMETHEUS TESTS NOT RUN: no prometheus binary "
    "(apt-get install prometheus; .ci/run does this)",
)
TOKEN = "scrape-token-123"
RATE_WINDOW_S = 30


def _port() -> int:
    sock = free_socket()
    port = int(sock.getsockname()[1])
    sock.close()
    return port


@pytest.fixture
def serve_process(redis_url: str, tmp_path: Path) -> Iterator[str]:
    """``llmtap serve`` as its own process on a free port, with a token set."""
    port = _port()
    env = {
        **os.environ,
        "LLMTAP_API_TOKEN": TOKEN,
        "LLMTAP_METRICS_QUANTILE_WINDOW_S": str(WINDOW_S),
    }
    cmd = [
        sys.executable,
        "-m",
        "llmtap.cli.main",
        "serve",
        "--port",
        str(port),
        "--url",
        redis_url,
    ]
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(f"{base}/healthz"), deadline_s=60, poll_s=0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def prometheus(serve_process: str, tmp_path: Path) -> Iterator[str]:
    """Prometheus scraping the serve process every second with the bearer token."""
    port = _port()
    target = serve_process.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: llmtap\n"
        f"    authorization: {{credentials: {TOKEN}}}\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    cmd = [
        str(PROMETHEUS),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(f"{base}/-/ready"), deadline_s=60, poll_s=0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def promql(base: str, expr: str) -> list[dict[str, Any]]:
    """Return the instant vector ``expr`` evaluates to now."""
    reply = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert reply["status"] == "success", reply
    result: list[dict[str, Any]] = reply["data"]["result"]
    return result


def scalar(base: str, expr: str) -> float | None:
    found = promql(base, expr)
    return float(found[0]["value"][1]) if found else None


@pytest.mark.slow
def test_promql_answers_equal_the_tool_functions(
    r: redis.Redis, redis_url: str, prometheus: str
) -> None:
    """Cost by model and p95 from PromQL equal the tools'; rate() sees the new calls."""
    now = time.time()
    first = seed_traffic(r, redis_url, 51, 2_000, max(float(month_start(now)), now - 3600))
    wait_for(lambda: scalar(prometheus, 'up{job="llmtap"}') == 1.0, deadline_s=60, poll_s=0.5)
    scraped_since = time.monotonic()
    wait_for(
        lambda: scalar(prometheus, "sum(llmtap_calls_total)") == first.truth.calls,
        deadline_s=60,
        poll_s=0.5,
    )
    analysis = tools.get_cost_analysis_data(r, (now - month_start(now)) / 3600 + 1, now=now + 60)
    cost = {
        row["metric"]["gen_ai_request_model"]: float(row["value"][1])
        for row in promql(prometheus, "sum by (gen_ai_request_model) (gen_ai_usage_cost_total)")
    }
    assert cost == pytest.approx({m: c["cost_usd"] for m, c in analysis["cost_by_model"].items()})
    p95 = {
        row["metric"]["gen_ai_request_model"]: float(row["value"][1])
        for row in promql(prometheus, 'gen_ai_client_operation_duration_seconds{quantile="0.95"}')
    }
    rows = query.latency_percentiles(r, time.time() - WINDOW_S, time.time(), (0.95,))
    assert p95 == pytest.approx({row["model"]: row["p95"] for row in rows})

    # New calls now. Once the series is older than the rate window, Prometheus extrapolates
    # by at most about one scrape interval (1 s of 30), so rate() * 30 is the new calls ±15%.
    time.sleep(max(0.0, RATE_WINDOW_S + 2 - (time.monotonic() - scraped_since)))
    second = Workload(52, start=time.time() - 5, span_s=5, producer_id="prom-52")
    second.write(r, 1_000)
    burst(redis_url, ["cost", "latency"])
    total = first.truth.calls + second.truth.calls
    wait_for(
        lambda: scalar(prometheus, "sum(llmtap_calls_total)") == total, deadline_s=60, poll_s=0.5
    )
    time.sleep(3)  # a few scrapes at the new value: the window's samples straddle the step
    rate = scalar(prometheus, f"sum(rate(llmtap_calls_total[{RATE_WINDOW_S}s]))")
    assert rate is not None
    assert rate * RATE_WINDOW_S == pytest.approx(second.truth.calls, rel=0.15)
