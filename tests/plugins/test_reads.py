"""A plugin's read function, published once under ``llmtap.reads``, is an ``llmtap`` command
and a ``llmtap serve`` route (behind the token, in the OpenAPI page) answering exactly what the
function answers; a broken read is one line naming it, and every other command still works.
The installed example (cost-by-tag), a real Valkey, real processes and a real uvicorn."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import redis
from llmtap_cost_by_tag.read import cost_by_tag

from llmtap import events, keys
from llmtap.consumers import service
from llmtap.consumers.runtime.config import RuntimeConfig
from llmtap.read import plugins
from llmtap.serve.app import OPENAPI_PATH, create_app
from tests.plugins.helpers import PLUGIN, TaggedWorkload, install
from tests.plugins.test_discovery import llmtap
from tests.serve.conftest import ServeThread

BROKEN_READS = {
    "llmtap.reads": {
        "read-import-error": "llmtap_no_such_module:READ",
        "read-wrong-type": "string:ascii_letters",
        "status": "llmtap_cost_by_tag.read:READ",  # a built-in command's name
    }
}


def seed(r: redis.Redis, url: str) -> float:
    """Write 300 tagged calls of the last minutes and drain them with the plugin; return now."""
    now = time.time()
    workload = TaggedWorkload(41)
    calls = [workload.call(now - 600 + i) for i in range(300)]
    r.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch(calls)})
    run = service.run_burst(url, [PLUGIN], config=RuntimeConfig(flush_interval_s=0.1))
    assert asyncio.run(asyncio.wait_for(run, 60))[PLUGIN].processed == 300
    return now


def test_the_example_read_is_discovered() -> None:
    """The installed example publishes one read under its plugin's name."""
    found = plugins.discover()
    assert [read.name for read in found.reads] == [PLUGIN]
    assert found.reads[0].path == f"/api/v1/x/{PLUGIN}"


def test_the_read_is_a_command_answering_what_the_function_answers(
    r: redis.Redis, redis_url: str
) -> None:
    """``llmtap cost-by-tag --hours 1 --json`` prints the read function's answer; a bad value
    is one line and exit 2."""
    now = seed(r, redis_url)
    done = llmtap(PLUGIN, "--hours", "1", "--key", "feature", "--json", "--url", redis_url)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    expected = cost_by_tag(r, now - 3600, time.time(), key="feature")
    assert got == json.loads(json.dumps(expected)) and got
    assert all(label.startswith("feature=") for label in got)
    bad = llmtap(PLUGIN, "--hours", "0", "--url", redis_url)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "--hours: must be at least" in bad.stderr


def test_the_read_is_a_route_behind_the_token(r: redis.Redis, redis_url: str) -> None:
    """``GET /api/v1/x/cost-by-tag`` answers the function's numbers, needs the token, rejects a
    bad argument with 400 naming it, and is in the OpenAPI description."""
    now = seed(r, redis_url)
    read = plugins.discover().reads[0]
    app = create_app(r, token="t0ken", clock=lambda: now, cache_ttl_s=0, reads=[read])
    server = ServeThread(app).start()
    auth = {"authorization": "Bearer t0ken"}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.get(read.path).status_code == 401
            reply = http.get(read.path, params={"hours": 1}, headers=auth)
            bad = http.get(read.path, params={"hours": "soon"}, headers=auth)
            spec = http.get(OPENAPI_PATH).json()
    finally:
        server.stop()
    assert reply.status_code == 200
    assert reply.json() == json.loads(json.dumps(cost_by_tag(r, now - 3600, now)))
    assert bad.status_code == 400 and "hours" in bad.json()["error"]
    assert read.path in spec["paths"]


def test_broken_reads_are_one_line_each_and_the_cli_still_works(
    tmp_path: Path, r: redis.Redis, redis_url: str
) -> None:
    """An import error, a wrong type and a built-in's name are each one line naming the read;
    the example's read and the built-in commands still run."""
    site = install(tmp_path / "site", "broken-reads", BROKEN_READS)
    done = llmtap("status", "--json", "--url", redis_url, site=site)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["pipeline"]["stream_length"] == 0
    lines = done.stderr.strip().splitlines()
    for name in BROKEN_READS["llmtap.reads"]:
        assert sum(f"plugin read {name!r}" in line for line in lines) == 1, lines
    assert "Traceback" not in done.stderr
    example = llmtap(PLUGIN, "--json", "--url", redis_url, site=site)
    assert example.returncode == 0 and json.loads(example.stdout) == {}
