"""The read side's writes: configuring the runtime settings, and the confirmed reset."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import redis

from llmtap import events, keys
from llmtap.events import CallEvent
from llmtap.producers.profiler import Profiler
from llmtap.read import tools
from llmtap.settings import Settings, SettingsError
from tests.read.truth import NOW, Truth


def test_configure_validates_writes_and_returns_the_effective_settings(r: redis.Redis) -> None:
    """A valid change lands in the runtime hash; a bad one raises and writes nothing."""
    got = tools.configure_profiling_settings(r, base=Settings(), sampling_rate=0.2,
                                             track_memory=True)  # fmt: skip
    assert got["sampling_rate"] == 0.2 and got["track_memory"] is True and got["enabled"]
    assert r.hgetall(keys.RUNTIME_SETTINGS) == {b"sampling_rate": b"0.2", b"track_memory": b"true"}
    with pytest.raises(SettingsError):
        tools.configure_profiling_settings(r, base=Settings(), sampling_rate=2.0, level="basic")
    with pytest.raises(SettingsError):
        tools.configure_profiling_settings(r, base=Settings(), max_history=5)
    assert r.hget(keys.RUNTIME_SETTINGS, "level") is None
    assert tools.get_profiling_status(r, Settings())["sampling_rate"] == 0.2


def test_configure_changes_a_running_producers_sampling(redis_url: str, r: redis.Redis) -> None:
    """A producer sampling nothing starts sending call events once sampling_rate is set to 1."""
    profiler = Profiler(Settings(sampling_rate=0.0, settings_poll_s=0.05), redis_url=redis_url)
    profiler.start()
    try:
        tools.configure_profiling_settings(r, base=Settings(), sampling_rate=1.0)
        deadline = time.monotonic() + 10
        while profiler.active_settings.sampling_rate != 1.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert profiler.active_settings.sampling_rate == 1.0
        profiler.wrap(lambda: {"model": "gpt-4o-mini"}, backend="openai", model="gpt-4o-mini")()
        assert profiler.flush()
    finally:
        profiler.close(timeout=2.0)
    sent = [
        item
        for _, fields in r.xrange(keys.EVENTS)
        for item in events.decode_entry(fields)
        if isinstance(item, CallEvent)
    ]
    assert len(sent) == 1


def test_reset_without_confirmation_deletes_nothing(r: redis.Redis, truth: Truth) -> None:
    """Without confirmation every key and stream entry stays, and the answer says what would go."""
    before = {k: r.type(k) for k in r.scan_iter(match="llmtap:*")}
    length = r.xlen(keys.EVENTS)
    got = tools.reset_profiling_metrics(r)
    assert got["confirmed"] is False and got["deleted"] == 0
    assert got["keys"] == len([t for t in before.values() if t != b"stream"])
    assert {k: r.type(k) for k in r.scan_iter(match="llmtap:*")} == before
    assert r.xlen(keys.EVENTS) == length


def test_reset_with_confirmation_deletes_everything_but_settings(
    r: redis.Redis, truth: Truth
) -> None:
    """With confirmation aggregates and state go, streams are emptied, settings stay."""
    r.hset(keys.RUNTIME_SETTINGS, "sampling_rate", "0.5")
    planned = tools.reset_profiling_metrics(r)["keys"]
    got = tools.reset_profiling_metrics(r, confirm=True)
    assert got["confirmed"] and got["deleted"] >= planned
    left = {k.decode() for k in r.scan_iter(match="llmtap:*")}
    assert left == {keys.RUNTIME_SETTINGS, keys.EVENTS}
    assert r.xlen(keys.EVENTS) == 0
    assert tools.get_cost_analysis_data(r, 24, now=NOW)["total_cost_nanousd"] == 0
    assert r.xinfo_groups(keys.EVENTS)  # running workers keep their groups


def test_reset_counts_keys_and_stream_entries_apart(r: redis.Redis, truth: Truth) -> None:
    """Deleted keys and removed stream entries are two numbers, each matching what was there."""
    plain = [k for k in r.scan_iter(match="llmtap:*") if r.type(k) != b"stream"]
    plain = [k for k in plain if k.decode() not in (keys.RUNTIME_SETTINGS,)]
    entries = r.xlen(keys.EVENTS)
    planned = tools.reset_profiling_metrics(r)
    assert (planned["keys"], planned["stream_entries"]) == (len(plain), entries)
    got = tools.reset_profiling_metrics(r, confirm=True)
    assert (got["deleted"], got["deleted_stream_entries"]) == (len(plain), entries)
    assert entries and plain  # the old answer added them up under "deleted"


def test_the_reset_command_prints_keys_and_stream_entries(
    r: redis.Redis, redis_url: str, truth: Truth
) -> None:
    """``llmtap reset --yes`` (a real process) says how many keys and stream entries went."""
    planned = tools.reset_profiling_metrics(r)
    done = subprocess.run(
        [sys.executable, "-m", "llmtap.cli.main", "reset", "--yes", "--url", redis_url],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first == (
        f"llmtap reset: deleted {planned['keys']} keys and {planned['stream_entries']} stream "
        f"entries in {keys.EVENTS}"
    )
