"""The main job: `llmtap demo` pushes traffic through the wrapper and the workers, exactly."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from llmtap import keys
from llmtap.cli import demo
from llmtap.settings import Settings


def test_demo_counts_every_call_through_the_whole_pipeline(redis_url: str, r: redis.Redis) -> None:
    """A short demo run ends with rollups and worker aggregates equal to the calls it made,
    and with slow-call alerts fired and resolved at its local webhook receiver."""
    settings = Settings(rollup_interval_s=0.5, slow_call_s=0.1)
    out = io.StringIO()
    summary = demo.run(duration=2.0, threads=4, seed=3, settings=settings, out=out, url=redis_url)
    assert summary["calls_made"] > 0
    assert summary["exact"] and summary["workers_exact"]
    assert summary["rollup_totals"]["calls"] == summary["calls_made"]
    assert summary["events_by_type"]["CallEvent"] > 0
    assert "error" in summary["call_events_by_reason"]
    text = out.getvalue()
    assert "rollups exact: yes" in text and "worker totals exact: yes" in text
    assert summary["aggregates"]["latency"], "the latency worker wrote sketches"
    statuses = {line.split()[0] for line in summary["alerts"]}
    assert statuses == {"firing", "resolved"}, summary["alerts"]


LLMTAP = str(Path(sys.executable).with_name("llmtap"))


def _llmtap(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``llmtap`` with ``env`` added and no LLMTAP_REDIS_URL of ours."""
    base = {k: v for k, v in os.environ.items() if k != "LLMTAP_REDIS_URL"}
    return subprocess.run(
        [LLMTAP, *argv], env={**base, **env}, capture_output=True, text=True, timeout=300
    )


def _holds_llmtap_data(r: redis.Redis) -> None:
    """Give the server what a running `llmtap up` leaves: the stream, a group, an aggregate."""
    r.xgroup_create(keys.EVENTS, keys.GROUP_COST, id="0", mkstream=True)
    r.xadd(keys.EVENTS, {keys.FIELD_EVENT: b"x"})
    r.hset(keys.cost("h", "20260101T00"), "total|calls", 1)


def test_demo_refuses_a_server_that_holds_llmtap_data(r: redis.Redis, redis_url: str) -> None:
    """``llmtap demo --url`` on a database with llmtap keys writes nothing, exits 2 and says in
    one line how to run it instead; the stream and its group are untouched."""
    _holds_llmtap_data(r)
    before = (r.xlen(keys.EVENTS), r.xinfo_groups(keys.EVENTS), r.dbsize())
    done = _llmtap("demo", "--url", redis_url, "--duration", "1")
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert "already holds llmtap data" in line and "--db N" in line and "without --url" in line
    assert (r.xlen(keys.EVENTS), r.xinfo_groups(keys.EVENTS), r.dbsize()) == before


def test_demo_runs_on_its_own_valkey_even_when_llmtap_redis_url_is_set(
    r: redis.Redis, redis_url: str
) -> None:
    """Without --url the demo uses its own embedded Valkey: the configured server is left
    exactly as it was."""
    _holds_llmtap_data(r)
    before = (r.xrange(keys.EVENTS), r.xinfo_groups(keys.EVENTS), sorted(r.keys()))
    done = _llmtap("demo", "--duration", "1", "--threads", "2", LLMTAP_REDIS_URL=redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(embedded Valkey)" in done.stdout
    assert (r.xrange(keys.EVENTS), r.xinfo_groups(keys.EVENTS), sorted(r.keys())) == before


def _timestamps(value: Any) -> Iterator[float]:
    """Every Unix time (a number after 2020, as a number or a string) or ISO time in ``value``."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _timestamps(item)
    elif isinstance(value, list):
        for item in value:
            yield from _timestamps(item)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int | float | str):
        try:
            number = float(value)
        except ValueError:
            try:
                moment = dt.datetime.fromisoformat(str(value))
            except ValueError:
                return
            yield (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
            return
        if 1.58e9 < number < 1e10:
            yield number


def test_demo_timestamps_are_real(r: redis.Redis, redis_url: str) -> None:
    """After ``llmtap demo --url URL --db N`` (an empty database), no alert state and no
    report timestamp is later than now, and the alerts it fired were resolved."""
    db1 = demo.with_db(redis_url, 1)
    other = redis.Redis.from_url(db1)
    other.flushdb()
    done = _llmtap(
        "demo", "--url", redis_url, "--db", "1", "--duration", "2", "--threads", "4",
        LLMTAP_SLOW_CALL_S="0.1", LLMTAP_ROLLUP_INTERVAL="0.5",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    now = time.time()
    states = [other.hgetall(key) for key in other.keys(keys.alert_state("*"))]
    assert states, "the demo fired alerts"
    decoded = [{k.decode(): v.decode() for k, v in state.items()} for state in states]
    assert {state["status"] for state in decoded} == {"resolved"}
    for state in decoded:
        state["doc"] = json.loads(state.get("doc", "{}"))
        assert max(_timestamps(state)) <= now, state
    report = _llmtap("report", "--url", db1, "--since", "1h", "--format", "json")
    assert report.returncode == 0, report.stderr
    stamps = list(_timestamps(json.loads(report.stdout)))
    assert stamps and max(stamps) <= time.time()
    other.flushdb()
    other.close()
