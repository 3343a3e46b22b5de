"""A producer's start-up: a bad prices file never reaches the user's call, and the first
profiled call costs what any call costs (prices file, catalogue and connection are the
publisher thread's work), against a real Valkey, a hung Redis and real processes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import llmtap
from llmtap.events import CallEvent
from llmtap.producers import profiler as profiler_module
from llmtap.producers.prices import load_pricing
from llmtap.producers.profiler import Profiler
from llmtap.settings import Settings
from tests.loopback import black_hole
from tests.producers.helpers import read_stream

RESPONSE = {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 1000, "completion_tokens": 200}}
OVERRIDE = {"openai/gpt-4o-mini": {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}}


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Wait until ``condition()`` holds, at most ``timeout`` seconds; return whether it did."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def bad_prices_file(tmp_path: Path, kind: str) -> str:
    """A prices file that cannot be used: missing, unreadable (a directory) or malformed."""
    path = tmp_path / "prices.json"
    if kind == "unreadable":
        path.mkdir()
    elif kind == "malformed":
        path.write_text('{"openai/gpt-4o-mini": {"input_per_mtok": -1}}')
    return str(path)


@pytest.mark.parametrize("kind", ["missing", "unreadable", "malformed"])
def test_bad_prices_file_never_reaches_the_call(
    kind: str,
    tmp_path: Path,
    redis_url: str,
    r: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a prices file that cannot be used, profiled calls return their result, the file is
    logged in one line and counted once, and calls are priced from the catalogue alone."""
    path = bad_prices_file(tmp_path, kind)
    settings = Settings(sampling_rate=1.0, prices_file=path, rollup_interval_s=3600)
    p = Profiler(settings, redis_url=redis_url)
    ask = p.wrap(lambda: RESPONSE, backend="openai")
    with caplog.at_level(logging.WARNING, logger="llmtap"):
        assert [ask(), ask()] == [RESPONSE, RESPONSE]
        assert p.flush()
    p.close()
    lines = [rec.getMessage() for rec in caplog.records if "pricing overrides" in rec.getMessage()]
    assert len(lines) == 1 and path in lines[0] and "\n" not in lines[0]
    assert "without overrides" in lines[0]
    assert p.stats()["bad_prices_file"] == 1
    price = load_pricing(Settings()).cost("openai", "gpt-4o-mini", 1000, 200)
    calls = [e for e in read_stream(r) if isinstance(e, CallEvent)]
    assert [c.estimated_cost_usd for c in calls] == [pytest.approx(price)] * 2


def test_bad_prices_file_in_a_real_process(tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    """An application run with LLMTAP_PRICES_FILE naming a missing file gets its results and
    one warning line on stderr, no traceback, and its calls are counted."""
    script = textwrap.dedent(
        """
        import logging
        import llmtap
        logging.basicConfig(format="%(message)s")
        ask = llmtap.profile(lambda: "hello", backend="openai", model="gpt-4o-mini")
        print(ask(), ask())
        """
    )
    env = {**os.environ, "LLMTAP_PRICES_FILE": str(tmp_path / "missing.json"),
           "LLMTAP_REDIS_URL": redis_url, "CS_PROFILING_SAMPLING_RATE": "1.0"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello hello"
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing.json" in lines[0] and "cannot read" in lines[0]
    calls = [e for e in read_stream(r) if isinstance(e, CallEvent)]
    assert len(calls) == 2 and all(c.estimated_cost_usd is not None for c in calls)


@pytest.fixture
def blocked_prices(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """A prices file that blocks its reader until released: a named pipe (a slow disk).

    Yields (path, release); release writes the override document, and is done at teardown in
    any case so no thread stays blocked.
    """
    path = tmp_path / "prices.fifo"
    os.mkfifo(path)
    released = threading.Event()

    def release() -> None:
        if released.is_set():
            return
        released.set()
        with open(path, "w") as fifo:  # blocks until the reader opens it
            fifo.write(json.dumps(OVERRIDE))

    yield str(path), release
    if not released.is_set():
        try:  # a reader may be waiting; if none is, there is nothing to release
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return
        os.write(fd, json.dumps(OVERRIDE).encode())
        os.close(fd)


def in_thread(call: Callable[[], Any]) -> tuple[threading.Event, list[Any]]:
    """Run ``call`` on a daemon thread; return (set when it returned, [its result])."""
    done, result = threading.Event(), []

    def run() -> None:
        result.append(call())
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, result


def test_first_call_returns_before_the_start_up_work(
    blocked_prices: tuple[str, Callable[[], None]],
) -> None:
    """With the prices file blocked and Redis hung, the first profiled call returns before the
    catalogue is compiled and before a connection exists; once the file is readable the call
    is counted and priced with its overrides."""
    path, release = blocked_prices
    with black_hole() as port:
        settings = Settings(sampling_rate=1.0, prices_file=path, exit_flush_s=0.0)
        p = Profiler(settings, redis_url=f"redis://127.0.0.1:{port}/0")
        ask = p.wrap(lambda: RESPONSE, backend="openai")
        returned, result = in_thread(ask)
        assert returned.wait(10.0), "the first call waited for the start-up work"
        assert result == [RESPONSE]
        recorder = p.publisher.recorder
        assert not recorder.pricing_ready
        assert p.publisher._client is None  # no connection made, nor attempted
        release()
        assert wait_for(lambda: recorder.pricing_ready and p.stats()["total_calls"] == 1)
        expected = recorder.pricing.cost("openai", "gpt-4o-mini", 1000, 200)
        assert expected == pytest.approx(1.2)  # the override's rate, not the catalogue's
        assert recorder.counters.to_rows()[0].cost_nanousd == round(expected * 1e9)
        p.close(timeout=0.0)


def test_a_full_queue_before_start_up_counts_calls_without_waiting(
    blocked_prices: tuple[str, Callable[[], None]],
) -> None:
    """Calls that overflow the queue before the catalogue is compiled are counted on the
    caller's thread at once, as unpriced calls, instead of waiting for the prices."""
    path, release = blocked_prices
    with black_hole() as port:
        settings = Settings(sampling_rate=1.0, prices_file=path, queue_size=5, exit_flush_s=0.0)
        p = Profiler(settings, redis_url=f"redis://127.0.0.1:{port}/0")
        ask = p.wrap(lambda: RESPONSE, backend="openai")
        returned, _ = in_thread(lambda: [ask() for _ in range(50)])
        assert returned.wait(10.0), "calls waited for the start-up work"
        assert p.stats()["unpriced_calls"] == 45
        release()
        assert wait_for(lambda: p.stats()["total_calls"] == 50)
        assert p.stats()["unpriced_calls"] == 45
        p.close(timeout=0.0)


def test_warm_start_compiles_the_catalogue_before_returning(redis_url: str) -> None:
    """``start(warm=True)`` and ``configure(start=True)`` return with the catalogue compiled,
    so an application can pay the start-up at a moment of its choosing."""
    p = Profiler(Settings(), redis_url=redis_url).start(warm=True)
    assert p.publisher.recorder.pricing_ready
    p.close()
    saved = list(profiler_module._default)  # configure replaces the process-wide profiler
    q = llmtap.configure(Settings(), redis_url=redis_url, start=True)
    try:
        assert q.publisher.recorder.pricing_ready
    finally:
        q.close()
        profiler_module._default[:] = saved
