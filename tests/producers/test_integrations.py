"""The contract every client integration keeps, run against the real client libraries and
loopback fake servers speaking each API's wire format, with events read back from Valkey:
tokens, cost, processing time, errors, streams, async clients, and results unchanged."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from llmtap.events import CallEvent
from llmtap.producers.profiler import Profiler
from tests.producers.fakes.clients import ASYNC, CASES, STREAMING, Case, Expect
from tests.producers.fakes.server import FakeServer, cut_short
from tests.producers.helpers import LITELLM_WARNINGS, acall_events, call_events

pytestmark = LITELLM_WARNINGS


@pytest.fixture(autouse=True)
def cleanup(request: pytest.FixtureRequest) -> Iterator[None]:
    """Undo a case's process-wide registration (LiteLLM's callbacks) after each test."""
    yield
    case = getattr(request.node, "callspec", None)
    if case is not None and isinstance(case.params.get("case"), Case):
        case.params["case"].cleanup()


def tokens(event: CallEvent) -> tuple[int, int, int, int, int]:
    """An event's token counts in :class:`Expect` order."""
    return (event.input_tokens, event.output_tokens, event.cache_read_tokens,
            event.cache_write_tokens, event.reasoning_tokens)  # fmt: skip


def check_event(event: CallEvent, expect: Expect, p: Profiler) -> None:
    """Assert a successful call's backend, model, tokens, cost and timing split."""
    assert (event.backend, event.model_name) == (expect.backend, expect.model)
    assert tokens(event) == expect.tokens
    price = p.publisher.recorder.pricing.cost(expect.backend, expect.model, *expect.tokens)
    assert price is not None
    assert event.estimated_cost_usd == pytest.approx(price)
    assert event.success and event.reason == "sampled" and event.error_type is None
    if expect.processing is None:
        assert event.processing_time is None and event.network_latency is None
        return
    assert event.processing_time == pytest.approx(expect.processing)
    assert event.network_latency == pytest.approx(max(event.latency - expect.processing, 0.0))


def raised(call: Callable[[], Any]) -> Exception:
    """The exception ``call`` raises (failing the test if it returns)."""
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("the call did not raise")


def ids(case: Case) -> str:
    return case.id


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_tokens_cost_and_processing_time(
    case: Case, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """A call's event has its backend, model, every token count, the catalogue price of those
    tokens and the backend's processing time, the rest of the latency being network."""
    client = case.profiled(case.client(server.url), profiler)
    server.queue(case.ok())
    case.call(client)
    (event,) = call_events(profiler, r, 1)
    check_event(event, case.expect, profiler)
    assert not event.streaming
    case.close(client)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_wrapped_call_returns_what_the_bare_call_returns(
    case: Case, server: FakeServer, profiler: Profiler
) -> None:
    """``wrap`` returns the same client object of the same type, and its call returns a result
    of the same type, equal to the bare client's for the same response."""
    bare = case.client(server.url)
    server.queue(case.ok(), case.ok())
    expected = case.call(bare)
    client = case.client(server.url)
    kind = type(client)
    assert case.profiled(client, profiler) is client and type(client) is kind
    result = case.call(client)
    assert type(result) is type(expected)
    assert case.result(result) == case.result(expected)
    case.close(bare)
    case.close(client)


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit"), (500, "server_error")])
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_errors_are_raised_unchanged_and_recorded_with_type_and_retries(
    case: Case, status: int, kind: str, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """A failing call raises what the bare call raises, after the client's own retries, and is
    recorded as an error with its normalised type and retry count."""
    attempts = case.expect.retries + 1 if case.id != "litellm" else 2
    server.queue(*[case.error(status)] * (2 * attempts))
    bare = case.client(server.url)
    bare_error = raised(lambda: case.call(bare))
    since = time.time()
    client = case.profiled(case.client(server.url), profiler)
    error = raised(lambda: case.call(client))
    case.close(bare)
    case.close(client)
    assert type(error) is type(bare_error) and str(error) == str(bare_error)
    assert len(server.requests) == 2 * attempts
    (event,) = call_events(profiler, r, 1, since)
    assert (event.success, event.reason, event.error_type) == (False, "error", kind)
    assert event.retry_count == case.expect.retries
    assert (event.backend, event.model_name) == (case.expect.backend, case.expect.model)


@pytest.mark.parametrize("case", STREAMING, ids=ids)
def test_streams_keep_their_type_and_record_ttft_and_final_usage(
    case: Case, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """A streamed call returns the library's own stream type with the bare call's chunks, and
    is recorded when it ends with TTFT before the end and the usage of its last chunks."""
    server.queue(case.stream_ok(), case.stream_ok())
    bare = case.client(server.url)
    bare_stream, bare_chunks = case.stream(bare)
    since = time.time()
    client = case.profiled(case.client(server.url), profiler)
    stream, chunks = case.stream(client)
    case.close(bare)
    case.close(client)
    assert type(stream) is type(bare_stream)
    assert [case.chunk(c) for c in chunks] == [case.chunk(c) for c in bare_chunks]
    (event,) = call_events(profiler, r, 1, since)
    check_event(event, case.stream_expect, profiler)
    assert event.streaming and event.ttft is not None and event.ttft < event.latency


@pytest.mark.parametrize("when", ["before-the-stream", "during-the-stream"])
@pytest.mark.parametrize("case", STREAMING, ids=ids)
def test_a_failed_streamed_call_is_recorded_as_streamed(
    case: Case, when: str, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """A call that asked for a stream is recorded as a failed streamed call, whether it failed
    before its first chunk (an error status) or during the stream (the connection cut)."""
    if when == "before-the-stream":
        server.queue(*[case.error(500)] * 4)  # the client's retries, LiteLLM's too
    else:
        server.queue(cut_short(case.stream_ok()))
    client = case.profiled(case.client(server.url), profiler)
    raised(lambda: case.stream(client))
    case.close(client)
    (event,) = call_events(profiler, r, 1)
    assert (event.success, event.reason, event.streaming) == (False, "error", True)
    assert (event.backend, event.model_name) == (case.expect.backend, case.expect.model)


@pytest.mark.parametrize("case", ASYNC, ids=ids)
async def test_async_clients_are_profiled_alike(
    case: Case, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """An async client's call and stream return what the bare async client's do and are
    recorded with the same tokens, cost and timings as sync ones."""
    streams = case in STREAMING
    server.queue(case.ok(), *([case.stream_ok()] if streams else []))
    server.queue(case.ok(), *([case.stream_ok()] if streams else []))
    bare = case.client(server.url, aio=True)
    expected = await case.acall(bare)
    bare_stream, bare_chunks = await case.astream(bare) if streams else (None, [])
    since = time.time()
    client = case.profiled(case.client(server.url, aio=True), profiler)
    result = await case.acall(client)
    assert type(result) is type(expected) and case.result(result) == case.result(expected)
    if streams:
        stream, chunks = await case.astream(client)
        assert type(stream) is type(bare_stream)
        assert [case.chunk(c) for c in chunks] == [case.chunk(c) for c in bare_chunks]
    await case.aclose(bare)
    await case.aclose(client)
    # LiteLLM reports from its own tasks, in any order: put the plain call first.
    events = sorted(
        await acall_events(profiler, r, 2 if streams else 1, since), key=lambda e: e.streaming
    )
    assert [e.streaming for e in events] == ([False, True] if streams else [False])
    check_event(events[0], case.expect, profiler)
    if streams:
        check_event(events[1], case.stream_expect, profiler)
        assert events[1].ttft is not None and events[1].ttft < events[1].latency


RETRYING = [case for case in CASES if case.expect.retries > 0]


@pytest.mark.parametrize("case", RETRYING, ids=ids)
def test_a_call_that_succeeds_after_a_retry_records_the_retry(
    case: Case, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """A call the client retried once after a 429 succeeds and is recorded with one retry."""
    client = case.profiled(case.client(server.url), profiler)
    server.queue(case.error(429), case.ok())
    case.call(client)
    case.close(client)
    (event,) = call_events(profiler, r, 1)
    assert event.success and event.retry_count == 1
    assert tokens(event) == case.expect.tokens
