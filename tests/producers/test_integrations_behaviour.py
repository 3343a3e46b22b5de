"""Integration behaviour beyond the contract: error-type mapping, lazy imports, wrapping
rules, streams without usage or closed early, circuit breakers and the LiteLLM Router."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiobreaker
import botocore.exceptions
import ollama
import openai
import pybreaker
import pydantic
import pytest
import redis

import llmtap
from llmtap.events import CallEvent, RollupEvent
from llmtap.producers.integrations.errors import error_type
from llmtap.producers.profiler import Profiler
from llmtap.settings import Settings
from tests.producers.fakes import openai_wire
from tests.producers.fakes.clients import MESSAGES, close_litellm_loop
from tests.producers.fakes.server import FakeServer
from tests.producers.helpers import LITELLM_WARNINGS, call_events, read_stream

pytestmark = LITELLM_WARNINGS


@pytest.fixture
def openai_client(server: FakeServer) -> Iterator[openai.OpenAI]:
    """An OpenAI client on the fake server that does not retry."""
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)
    yield client
    client.close()


def named(name: str, **attributes: Any) -> Exception:
    """An exception of a class called ``name`` (as a client library would raise)."""
    return type(name, (Exception,), attributes)()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (named("RateLimitError", status_code=429), "rate_limit"),
        (named("APITimeoutError"), "timeout"),
        (named("APIConnectionError"), "connection"),
        (named("InternalServerError", status_code=500), "server_error"),
        (named("OverloadedError", status_code=529), "overloaded"),
        (named("AuthenticationError", status_code=401), "auth"),
        (named("BadRequestError", status_code=400), "bad_request"),
        (named("NotFoundError", status_code=404), "not_found"),
        (named("APIStatusError", status_code=418), "api_error"),
        (named("CircuitBreakerError"), "breaker_open"),
        (ollama.ResponseError("busy", 503), "overloaded"),
        (ollama.ResponseError("stream error"), "api_error"),
        (ConnectionRefusedError(), "connection"),
        (TimeoutError(), "timeout"),
        (
            botocore.exceptions.ClientError(
                {
                    "Error": {"Code": "ThrottlingException"},
                    "ResponseMetadata": {"HTTPStatusCode": 429},
                },
                "Converse",
            ),
            "rate_limit",
        ),
        (
            botocore.exceptions.ClientError(
                {
                    "Error": {"Code": "ModelTimeoutException"},
                    "ResponseMetadata": {"HTTPStatusCode": 408},
                },
                "InvokeModel",
            ),
            "timeout",
        ),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"), "timeout"),
        (KeyError("a bug in the caller"), "KeyError"),
    ],
)
def test_error_types_are_normalised(exc: Exception, expected: str) -> None:
    """Each client's errors map to one vocabulary; unrelated errors keep their class name."""
    assert error_type(exc) == expected


def test_importing_llmtap_imports_no_client_library() -> None:
    """``import llmtap`` loads none of the client or breaker libraries."""
    code = (
        "import sys, llmtap\n"
        "libs = ('openai', 'anthropic', 'boto3', 'botocore', 'litellm', 'ollama', 'pybreaker',"
        " 'aiobreaker', 'httpx')\n"
        "print(sorted(m for m in libs if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_clients_are_refused(profiler: Profiler) -> None:
    """Wrapping something no integration knows raises TypeError naming what is supported."""
    with pytest.raises(TypeError, match="OpenAI"):
        llmtap.wrap(object(), profiler=profiler)


def test_wrapping_twice_records_each_call_once(
    openai_client: openai.OpenAI, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """A client wrapped twice still records one event per call, with the first options."""
    llmtap.wrap(openai_client, profiler=profiler, tenant="acme")
    llmtap.wrap(openai_client, profiler=profiler, tenant="other")
    server.queue(openai_wire.chat())
    openai_client.chat.completions.create(model=openai_wire.MODEL, messages=MESSAGES)
    (event,) = call_events(profiler, r, 1)
    assert event.tenant == "acme"


def test_client_copies_are_profiled(
    openai_client: openai.OpenAI, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """``with_options`` on a wrapped client returns a client that is profiled too."""
    llmtap.wrap(openai_client, profiler=profiler, tenant="acme")
    server.queue(openai_wire.chat())
    copy = openai_client.with_options(timeout=5.0)
    assert type(copy) is type(openai_client)
    copy.chat.completions.create(model=openai_wire.MODEL, messages=MESSAGES)
    copy.close()
    (event,) = call_events(profiler, r, 1)
    assert (event.tenant, event.input_tokens) == ("acme", 1200)


def test_chat_stream_helper_is_profiled(
    openai_client: openai.OpenAI, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """The SDK's ``chat.completions.stream()`` helper goes through the profiled ``create``."""
    llmtap.wrap(openai_client, profiler=profiler)
    server.queue(openai_wire.chat_stream())
    with openai_client.chat.completions.stream(
        model=openai_wire.MODEL, messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()
    assert final.usage is not None and final.usage.prompt_tokens == 1200
    (event,) = call_events(profiler, r, 1)
    assert event.streaming and event.ttft is not None and event.output_tokens == 300


class Greeting(pydantic.BaseModel):
    """A structured output."""

    greeting: str


def test_structured_output_parse_is_profiled(
    openai_client: openai.OpenAI, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """``chat.completions.parse`` returns the parsed model and is recorded like ``create``."""
    llmtap.wrap(openai_client, profiler=profiler)
    server.queue(openai_wire.chat('{"greeting": "hi"}'))
    result = openai_client.chat.completions.parse(
        model=openai_wire.MODEL, messages=MESSAGES, response_format=Greeting
    )
    assert result.choices[0].message.parsed == Greeting(greeting="hi")
    (event,) = call_events(profiler, r, 1)
    assert (event.input_tokens, event.processing_time) == (1200, 0.24)


def test_stream_without_usage_records_ttft_and_model(
    openai_client: openai.OpenAI, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """A chat stream without ``include_usage`` is recorded with TTFT and model, 0 tokens."""
    llmtap.wrap(openai_client, profiler=profiler)
    server.queue(openai_wire.chat_stream(include_usage=False))
    stream = openai_client.chat.completions.create(
        model=openai_wire.MODEL, messages=MESSAGES, stream=True
    )
    assert len(list(stream)) == 4
    (event,) = call_events(profiler, r, 1)
    assert event.streaming and event.ttft is not None and event.model_name == openai_wire.MODEL
    assert (event.input_tokens, event.output_tokens) == (0, 0)


def test_stream_closed_early_is_recorded(
    openai_client: openai.OpenAI, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """A stream left after its first chunk is recorded when closed, with what it delivered."""
    llmtap.wrap(openai_client, profiler=profiler)
    server.queue(openai_wire.chat_stream())
    with openai_client.chat.completions.create(
        model=openai_wire.MODEL, messages=MESSAGES, stream=True
    ) as stream:
        first = next(stream)
    assert first.choices[0].delta.role == "assistant"
    (event,) = call_events(profiler, r, 1)
    assert event.success and event.streaming and event.ttft is not None
    assert event.input_tokens == 0


def test_disabled_profiler_leaves_calls_alone(
    openai_client: openai.OpenAI, server: FakeServer, redis_url: str, r: redis.Redis
) -> None:
    """At level ``disabled`` a wrapped client works as before and nothing is recorded."""
    p = Profiler(Settings(level="disabled"), redis_url=redis_url)
    llmtap.wrap(openai_client, profiler=p)
    server.queue(openai_wire.chat())
    result = openai_client.chat.completions.create(model=openai_wire.MODEL, messages=MESSAGES)
    assert result.usage is not None and result.usage.prompt_tokens == 1200
    assert p.stats()["total_calls"] == 0
    p.close()


def breaker_events(evs: list[Any]) -> list[CallEvent]:
    """The call events that carry a circuit-breaker state."""
    return [e for e in evs if isinstance(e, CallEvent) and e.circuit_breaker_triggered]


def rollup_calls(evs: list[Any]) -> Counter[str]:
    """Calls and errors summed over every rollup row."""
    totals: Counter[str] = Counter()
    for e in evs:
        if isinstance(e, RollupEvent):
            for row in e.rows:
                totals["calls"] += row.calls
                totals["errors"] += row.errors
    return totals


def test_pybreaker_state_changes_and_rejections_become_events(
    openai_client: openai.OpenAI, server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """A pybreaker trip is a breaker event (not a call); a rejected call is a failed call with
    ``error_type=breaker_open``; both are kept by the sampler."""
    llmtap.wrap(openai_client, profiler=profiler)
    listener = llmtap.BreakerListener("openai", openai_wire.MODEL, profiler=profiler)
    breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=600, listeners=[listener])
    create = openai_client.chat.completions.create
    server.queue(openai_wire.error(500))
    with pytest.raises(pybreaker.CircuitBreakerError):  # the failure that trips it
        listener.call(breaker, create, model=openai_wire.MODEL, messages=MESSAGES)
    with pytest.raises(pybreaker.CircuitBreakerError):  # rejected without a request
        listener.call(breaker, create, model=openai_wire.MODEL, messages=MESSAGES)
    assert len(server.requests) == 1
    evs = read_stream(r) if profiler.flush() else []
    change, rejected = breaker_events(evs)
    assert (change.circuit_breaker_state, change.success, change.reason) == (
        "open",
        True,
        "breaker",
    )
    assert (rejected.error_type, rejected.circuit_breaker_state) == ("breaker_open", "open")
    failed = [e for e in evs if isinstance(e, CallEvent) and e.error_type == "server_error"]
    assert len(failed) == 1
    assert rollup_calls(evs) == Counter(calls=2, errors=2)


async def test_aiobreaker_listener_records_state_changes(
    profiler: Profiler, r: redis.Redis
) -> None:
    """The same listener works with aiobreaker, whose states are enums."""
    listener = llmtap.BreakerListener("anthropic", profiler=profiler)
    breaker = aiobreaker.CircuitBreaker(fail_max=1, listeners=[listener])

    async def fail() -> None:
        raise ConnectionError("down")

    with pytest.raises(aiobreaker.CircuitBreakerError):
        await listener.call_async(breaker, fail)
    with pytest.raises(aiobreaker.CircuitBreakerError):
        await listener.call_async(breaker, fail)
    assert profiler.flush()
    change, rejected = breaker_events(read_stream(r))
    assert (change.backend, change.circuit_breaker_state) == ("anthropic", "open")
    assert rejected.error_type == "breaker_open" and not rejected.success


def test_report_breaker_api(profiler: Profiler, r: redis.Redis) -> None:
    """``report_breaker`` records a state change from any breaker, outside the rollup calls."""
    llmtap.report_breaker("bedrock", "HALF_OPEN", "anthropic.claude-3-haiku-20240307-v1:0",
                          profiler=profiler, tenant="acme")  # fmt: skip
    assert profiler.flush()
    evs = read_stream(r)
    (event,) = breaker_events(evs)
    assert (event.backend, event.circuit_breaker_state, event.tenant) == (
        "bedrock", "half-open", "acme",
    )  # fmt: skip
    assert event.reason == "breaker" and event.latency == 0.0
    assert rollup_calls(evs)["calls"] == 0


def test_litellm_router_calls_are_profiled(
    server: FakeServer, profiler: Profiler, r: redis.Redis
) -> None:
    """``wrap(router)`` registers the callback, so Router calls are recorded with the
    provider and model the Router chose."""
    import litellm

    from llmtap.producers.integrations.litellm import uninstall

    router = litellm.Router(
        model_list=[
            {
                "model_name": "fast",
                "litellm_params": {
                    "model": f"openai/{openai_wire.MODEL}",
                    "api_base": f"{server.url}/v1",
                    "api_key": "sk-test",
                },
            }
        ]
    )
    try:
        assert llmtap.wrap(router, profiler=profiler, session="s-1") is router
        server.queue(openai_wire.chat())
        router.completion(model="fast", messages=MESSAGES)
        (event,) = call_events(profiler, r, 1)
    finally:
        uninstall()
        close_litellm_loop()
    assert (event.backend, event.model_name, event.session_id) == (
        "openai", openai_wire.MODEL, "s-1",
    )  # fmt: skip
    assert event.tags == {"via": "litellm"} and event.input_tokens == 1200
