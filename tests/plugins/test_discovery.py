"""Plugins are found through the ``llmtap.workers`` entry points: listed, run by name, checked
by ``worker health``, shown by ``status``; a broken plugin (import error, wrong type, a raising
factory, a built-in's name, writes outside its prefix) is reported by name in one line and
never stops ``llmtap up`` or the other workers. Real processes, a real Valkey."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis

from llmtap import keys
from llmtap.consumers import registry
from tests.consumer_helpers import day_totals, truth_totals, wait_for
from tests.plugins.helpers import (
    BROKEN_MODULE,
    BROKEN_POINTS,
    ESCAPER_MODULE,
    ESCAPER_POINTS,
    PLUGIN,
    TaggedWorkload,
    expected,
    install,
    plugin_day,
)

BROKEN = ("import-error", "wrong-type", "raises", "cost")
# The ``llmtap`` console script, run with this interpreter.
CLI = "import sys; from llmtap.cli import main; sys.exit(main())"


def llmtap(
    *args: str, site: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``llmtap ARGS`` in a child (with ``site`` on its PYTHONPATH); return what it did."""
    env = {**os.environ, "LLMTAP_FLUSH_INTERVAL_S": "0.1", "LLMTAP_BLOCK_MS": "100"}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    argv = [sys.executable, "-c", CLI, *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def spawn(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``llmtap ARGS`` in the background, output to ``log``."""
    env = {**os.environ, "LLMTAP_HEARTBEAT_TTL_S": "3", "LLMTAP_BLOCK_MS": "100"}
    with log.open("ab") as out:
        argv = [sys.executable, "-c", CLI, *args]
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
def broken_site(tmp_path: Path) -> Path:
    """A site directory holding broken plugins and one that writes outside its prefix."""
    site = install(tmp_path / "site", "broken-plugins", BROKEN_POINTS, BROKEN_MODULE)
    return install(site, "escaper-plugin", ESCAPER_POINTS, ESCAPER_MODULE)


def test_the_installed_example_is_listed_beside_the_built_ins() -> None:
    """``llmtap worker --list`` shows the example's worker as a plugin with its group."""
    done = llmtap("worker", "--list")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert [PLUGIN, PLUGIN, "plugin"] in [row[:3] for row in rows]
    assert ["cost", "cost", "built-in"] in [row[:3] for row in rows]


def test_each_broken_plugin_is_one_problem_naming_it(
    broken_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """discover() reports every broken plugin by name and reason and still loads the good one;
    the built-in keeps its name."""
    monkeypatch.syspath_prepend(str(broken_site))
    found = registry.discover()
    problems = {p.name: p.reason for p in found.problems}
    assert set(problems) == set(BROKEN)
    assert "llmtap_no_such_module" in problems["import-error"]
    assert "not a llmtap.plugin.Worker" in problems["wrong-type"]
    assert "plugin exploded at load" in problems["raises"]
    assert "built-in" in problems["cost"]
    assert all("\n" not in line for line in problems.values())
    assert PLUGIN in found.plugins and "escaper" in found.plugins
    assert found.workers["cost"] is registry.WORKERS["cost"]


def test_broken_plugins_do_not_break_up(r: redis.Redis, redis_url: str, broken_site: Path) -> None:
    """``llmtap up --with all --burst`` with broken plugins installed: each is one line naming
    it, the plugin writing outside its prefix stops alone (nothing written), and the built-in
    workers and the good plugin count everything."""
    workload = TaggedWorkload(31)
    workload.write(r, 3_000)
    done = llmtap("up", "--burst", "--with", "all", "--url", redis_url, site=broken_site)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Traceback" not in output
    for name in ("import-error", "wrong-type", "raises"):
        lines = [line for line in done.stderr.splitlines() if f"plugin {name}:" in line]
        assert len(lines) == 1, done.stderr
    stopped = [line for line in done.stderr.splitlines() if "plugin escaper stopped" in line]
    assert len(stopped) == 1 and "outside its prefix llmtap:{s0}:x:escaper:" in stopped[0]
    assert day_totals(r) == truth_totals(workload.truth)  # the escaper's +1 never landed
    assert plugin_day(r) == expected(workload)
    assert f"llmtap: {PLUGIN}: 3000 events" in done.stdout


def test_running_a_broken_plugin_by_name_is_one_line(broken_site: Path, redis_url: str) -> None:
    """``llmtap worker import-error`` exits 2 with one line naming the plugin, no traceback."""
    done = llmtap("worker", "import-error", "--url", redis_url, site=broken_site)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "plugin import-error" in lines[0], done.stderr


def test_health_status_and_sigterm_for_a_plugin_worker(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A running plugin worker is healthy for compose, listed by status with its lag, and
    stops cleanly on SIGTERM (after which it is unhealthy: its heartbeat is gone)."""
    assert llmtap("worker", "health", PLUGIN, "--url", redis_url).returncode == 1
    TaggedWorkload(32).write(r, 500)
    log = tmp_path / "worker.log"
    child = spawn(["worker", PLUGIN, "--url", redis_url], log)
    try:
        wait_for(lambda: any(r.scan_iter(keys.heartbeat_pattern(PLUGIN))), 60)
        health = llmtap("worker", "health", PLUGIN, "--url", redis_url)
        assert health.returncode == 0 and health.stdout.startswith("ok"), health.stdout
        wait_for(lambda: int(r.hget(keys.stats(PLUGIN), "processed") or 0) == 500, 60)
        status = llmtap("status", "--json", "--url", redis_url)
        workers = json.loads(status.stdout)["pipeline"]["workers"]
        assert workers[PLUGIN]["lag"] == 0 and workers[PLUGIN]["live_consumers"] == 1
    finally:
        child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=60)
    assert code == 0, log.read_text()[-2000:]
    assert llmtap("worker", "health", PLUGIN, "--url", redis_url).returncode == 1
