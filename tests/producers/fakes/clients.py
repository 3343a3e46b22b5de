"""The real client libraries pointed at the fake servers: one case per integration.

Each case knows how to build a (bare) client on a fake server's URL, which replies to queue,
how to make a call and a streamed call (sync and async), how to compare results, and what
the resulting event must say. The contract suite in ``tests/test_integrations.py`` runs the
same assertions against every case.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no catalogue download

import anthropic
import boto3
import botocore.config
import ollama
import openai

import llmtap
from llmtap.producers.integrations.litellm import LlmtapLogger, uninstall
from tests.producers.fakes import anthropic_wire, bedrock_wire, ollama_wire, openai_wire
from tests.producers.fakes.server import Reply

MESSAGES = [{"role": "user", "content": "Say hello"}]
RETRIES = 1  # the clients' own retries in these tests


@dataclass(frozen=True)
class Expect:
    """What a call's event must report."""

    backend: str
    model: str
    tokens: tuple[
        int, int, int, int, int
    ]  # input (cached included), output, read, write, reasoning
    processing: float | None
    retries: int = RETRIES


def dump(value: Any) -> Any:
    """A comparable form of a result or chunk: model dumps for pydantic objects."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items() if k != "ResponseMetadata"}
    return value


class Case:
    """One integration under the contract (subclasses fill in the client specifics)."""

    id: str
    expect: Expect
    stream_expect: Expect
    has_async = True

    def client(self, url: str, aio: bool = False) -> Any:
        raise NotImplementedError

    def ok(self) -> Reply:
        raise NotImplementedError

    def stream_ok(self) -> Reply:
        raise NotImplementedError

    def error(self, status: int) -> Reply:
        raise NotImplementedError

    def call(self, client: Any) -> Any:
        raise NotImplementedError

    def stream(self, client: Any) -> tuple[Any, list[Any]]:
        """Make a streamed call; return the stream object and its chunks, read to the end."""
        raise NotImplementedError

    async def acall(self, client: Any) -> Any:
        raise NotImplementedError

    async def astream(self, client: Any) -> tuple[Any, list[Any]]:
        raise NotImplementedError

    def result(self, result: Any) -> Any:
        """The comparable form of a non-streamed result."""
        return dump(result)

    def chunk(self, chunk: Any) -> Any:
        """The comparable form of a stream chunk."""
        return dump(chunk)

    def profiled(self, client: Any, profiler: Any) -> Any:
        """Profile ``client`` with llmtap and return what ``wrap`` returns."""
        return llmtap.wrap(client, profiler=profiler)

    def cleanup(self) -> None:
        """Undo any process-wide registration ``profiled`` made."""

    async def aclose(self, client: Any) -> None:
        """Release an async client's connections."""
        close = getattr(client, "close", None)
        if close is not None:
            await close()

    def close(self, client: Any) -> None:
        """Release a sync client's connections."""
        close = getattr(client, "close", None)
        if close is not None:
            close()


class OpenAIChat(Case):
    id = "openai-chat"
    expect = stream_expect = Expect("openai", openai_wire.MODEL, (1200, 300, 1024, 0, 128), 0.24)

    def client(self, url: str, aio: bool = False) -> Any:
        cls = openai.AsyncOpenAI if aio else openai.OpenAI
        return cls(base_url=f"{url}/v1", api_key="sk-test", max_retries=RETRIES)

    def ok(self) -> Reply:
        return openai_wire.chat()

    def stream_ok(self) -> Reply:
        return openai_wire.chat_stream()

    def error(self, status: int) -> Reply:
        return openai_wire.error(status)

    def call(self, client: Any) -> Any:
        return client.chat.completions.create(model=openai_wire.MODEL, messages=MESSAGES)

    def stream(self, client: Any) -> tuple[Any, list[Any]]:
        with client.chat.completions.create(
            model=openai_wire.MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        ) as stream:
            return stream, list(stream)

    async def acall(self, client: Any) -> Any:
        return await client.chat.completions.create(model=openai_wire.MODEL, messages=MESSAGES)

    async def astream(self, client: Any) -> tuple[Any, list[Any]]:
        stream = await client.chat.completions.create(
            model=openai_wire.MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            return stream, [chunk async for chunk in stream]


class AzureChat(OpenAIChat):
    id = "azure-chat"
    expect = stream_expect = Expect("azure", openai_wire.MODEL, (1200, 300, 1024, 0, 128), 0.24)

    def client(self, url: str, aio: bool = False) -> Any:
        cls = openai.AsyncAzureOpenAI if aio else openai.AzureOpenAI
        return cls(
            azure_endpoint=url, api_key="test", api_version="2024-10-21", max_retries=RETRIES
        )


class OpenAIResponses(OpenAIChat):
    id = "openai-responses"
    stream_expect = Expect("openai", openai_wire.MODEL, (1200, 300, 1024, 0, 128), 0.012)

    def ok(self) -> Reply:
        return openai_wire.response()

    def stream_ok(self) -> Reply:
        return openai_wire.response_stream()

    def call(self, client: Any) -> Any:
        return client.responses.create(model=openai_wire.MODEL, input="Say hello")

    def stream(self, client: Any) -> tuple[Any, list[Any]]:
        stream = client.responses.create(model=openai_wire.MODEL, input="Say hello", stream=True)
        return stream, list(stream)

    async def acall(self, client: Any) -> Any:
        return await client.responses.create(model=openai_wire.MODEL, input="Say hello")

    async def astream(self, client: Any) -> tuple[Any, list[Any]]:
        stream = await client.responses.create(
            model=openai_wire.MODEL, input="Say hello", stream=True
        )
        return stream, [event async for event in stream]


class OpenAIEmbeddings(OpenAIChat):
    id = "openai-embeddings"
    expect = Expect(
        "openai", openai_wire.EMBED_MODEL, (openai_wire.EMBED_TOKENS, 0, 0, 0, 0), 0.015
    )
    stream_expect = expect

    def ok(self) -> Reply:
        return openai_wire.embeddings()

    def call(self, client: Any) -> Any:
        return client.embeddings.create(model=openai_wire.EMBED_MODEL, input="Say hello")

    async def acall(self, client: Any) -> Any:
        return await client.embeddings.create(model=openai_wire.EMBED_MODEL, input="Say hello")


class AnthropicMessages(Case):
    id = "anthropic-messages"
    expect = stream_expect = Expect(
        "anthropic", anthropic_wire.MODEL, (1250, 300, 1000, 50, 0), None
    )

    def client(self, url: str, aio: bool = False) -> Any:
        cls = anthropic.AsyncAnthropic if aio else anthropic.Anthropic
        return cls(base_url=url, api_key="sk-ant-test", max_retries=RETRIES)

    def ok(self) -> Reply:
        return anthropic_wire.message()

    def stream_ok(self) -> Reply:
        return anthropic_wire.message_stream()

    def error(self, status: int) -> Reply:
        return anthropic_wire.error(status)

    def _args(self) -> dict[str, Any]:
        return {"model": anthropic_wire.MODEL, "max_tokens": 512, "messages": MESSAGES}

    def call(self, client: Any) -> Any:
        return client.messages.create(**self._args())

    def stream(self, client: Any) -> tuple[Any, list[Any]]:
        with client.messages.create(**self._args(), stream=True) as stream:
            return stream, list(stream)

    async def acall(self, client: Any) -> Any:
        return await client.messages.create(**self._args())

    async def astream(self, client: Any) -> tuple[Any, list[Any]]:
        stream = await client.messages.create(**self._args(), stream=True)
        return stream, [event async for event in stream]


class AnthropicStreamHelper(AnthropicMessages):
    id = "anthropic-stream-helper"

    def stream(self, client: Any) -> tuple[Any, list[Any]]:
        with client.messages.stream(**self._args()) as stream:
            events = list(stream)
            return stream, [*events, stream.get_final_message()]

    async def astream(self, client: Any) -> tuple[Any, list[Any]]:
        async with client.messages.stream(**self._args()) as stream:
            events = [event async for event in stream]
            return stream, [*events, await stream.get_final_message()]


def bedrock_client(url: str) -> Any:
    """A bedrock-runtime client on the fake server, with static credentials and fast retries."""
    config = botocore.config.Config(
        retries={"total_max_attempts": RETRIES + 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=10,
    )
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        config=config,
    )


class BedrockConverse(Case):
    id = "bedrock-converse"
    expect = stream_expect = Expect("bedrock", bedrock_wire.MODEL, (1200, 300, 1000, 0, 0), 0.24)
    has_async = False

    def client(self, url: str, aio: bool = False) -> Any:
        return bedrock_client(url)

    def ok(self) -> Reply:
        return bedrock_wire.converse()

    def stream_ok(self) -> Reply:
        return bedrock_wire.converse_stream()

    def error(self, status: int) -> Reply:
        return bedrock_wire.error(status)

    def call(self, client: Any) -> Any:
        return client.converse(
            modelId=bedrock_wire.MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}]
        )

    def stream(self, client: Any) -> tuple[Any, list[Any]]:
        response = client.converse_stream(
            modelId=bedrock_wire.MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}]
        )
        return response["stream"], list(response["stream"])


class BedrockInvoke(BedrockConverse):
    id = "bedrock-invoke"
    expect = stream_expect = Expect("bedrock", bedrock_wire.MODEL, (1200, 300, 0, 0, 0), 0.24)

    def ok(self) -> Reply:
        return bedrock_wire.invoke()

    def stream_ok(self) -> Reply:
        return bedrock_wire.invoke_stream()

    def call(self, client: Any) -> Any:
        return client.invoke_model(modelId=bedrock_wire.MODEL, body=b'{"prompt": "Hi"}')

    def result(self, result: Any) -> Any:
        return {**dump(result), "body": result["body"].read()}

    def stream(self, client: Any) -> tuple[Any, list[Any]]:
        response = client.invoke_model_with_response_stream(
            modelId=bedrock_wire.MODEL, body=b'{"prompt": "Hi"}'
        )
        return response["body"], list(response["body"])


class OllamaChat(Case):
    id = "ollama-chat"
    method = "chat"
    expect = stream_expect = Expect(
        "ollama",
        ollama_wire.MODEL,
        (ollama_wire.PROMPT_TOKENS, ollama_wire.OUTPUT_TOKENS, 0, 0, 0),
        ollama_wire.TOTAL_NS / 1e9,
        retries=0,
    )

    def client(self, url: str, aio: bool = False) -> Any:
        return (ollama.AsyncClient if aio else ollama.Client)(host=url)

    def ok(self) -> Reply:
        return ollama_wire.chat()

    def stream_ok(self) -> Reply:
        return ollama_wire.chat_stream()

    def error(self, status: int) -> Reply:
        return ollama_wire.error(status)

    def _args(self) -> dict[str, Any]:
        return {"model": ollama_wire.MODEL, "messages": MESSAGES}

    def call(self, client: Any) -> Any:
        return getattr(client, self.method)(**self._args())

    def stream(self, client: Any) -> tuple[Any, list[Any]]:
        stream = getattr(client, self.method)(**self._args(), stream=True)
        return stream, list(stream)

    async def acall(self, client: Any) -> Any:
        return await getattr(client, self.method)(**self._args())

    async def astream(self, client: Any) -> tuple[Any, list[Any]]:
        stream = await getattr(client, self.method)(**self._args(), stream=True)
        return stream, [chunk async for chunk in stream]

    async def aclose(self, client: Any) -> None:
        await client._client.aclose()  # ollama's AsyncClient has no public close in all versions

    def close(self, client: Any) -> None:
        client._client.close()


class OllamaGenerate(OllamaChat):
    id = "ollama-generate"
    method = "generate"

    def ok(self) -> Reply:
        return ollama_wire.generate()

    def stream_ok(self) -> Reply:
        return ollama_wire.generate_stream()

    def _args(self) -> dict[str, Any]:
        return {"model": ollama_wire.MODEL, "prompt": "Say hello"}


CASES: list[Case] = [
    OpenAIChat(),
    AzureChat(),
    OpenAIResponses(),
    OpenAIEmbeddings(),
    AnthropicMessages(),
    AnthropicStreamHelper(),
    BedrockConverse(),
    BedrockInvoke(),
    OllamaChat(),
    OllamaGenerate(),
]

STREAMING: list[Case] = [case for case in CASES if not isinstance(case, OpenAIEmbeddings)]
ASYNC: list[Case] = [case for case in CASES if case.has_async]

Factory = Callable[[str, bool], Any]


class LiteLLMClient:
    """LiteLLM has no client object: this holds the fake server's URL for its calls."""

    def __init__(self, url: str) -> None:
        self.url = url

    def args(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments of a LiteLLM call routed to the fake OpenAI server."""
        return {"model": f"openai/{openai_wire.MODEL}", "api_base": f"{self.url}/v1",
                "api_key": "sk-test", "messages": MESSAGES, "max_retries": RETRIES,
                **extra}  # fmt: skip


class LiteLLMCompletion(OpenAIChat):
    id = "litellm"
    # LiteLLM routes through the OpenAI SDK and does not report its retries to callbacks.
    expect = stream_expect = Expect(
        "openai", openai_wire.MODEL, (1200, 300, 1024, 0, 128), 0.24, retries=0
    )
    attempts = RETRIES + 1

    def client(self, url: str, aio: bool = False) -> Any:
        return LiteLLMClient(url)

    def call(self, client: Any) -> Any:
        import litellm

        return litellm.completion(**client.args())

    def stream(self, client: Any) -> tuple[Any, list[Any]]:
        import litellm

        usage = {"include_usage": True}
        stream = litellm.completion(**client.args(stream=True, stream_options=usage))
        return stream, list(stream)

    async def acall(self, client: Any) -> Any:
        import litellm

        return await litellm.acompletion(**client.args())

    async def astream(self, client: Any) -> tuple[Any, list[Any]]:
        import litellm

        stream = await litellm.acompletion(
            **client.args(stream=True, stream_options={"include_usage": True})
        )
        return stream, [chunk async for chunk in stream]

    def result(self, result: Any) -> Any:
        return _stable(dump(result))

    def chunk(self, chunk: Any) -> Any:
        return _stable(dump(chunk))

    def profiled(self, client: Any, profiler: Any) -> Any:
        """Register llmtap's LiteLLM callback; the "client" itself is left as it is."""
        import litellm

        litellm.callbacks.append(LlmtapLogger(profiler))
        return client

    def cleanup(self) -> None:
        """Remove llmtap's callbacks from LiteLLM."""
        uninstall()
        close_litellm_loop()

    def close(self, client: Any) -> None:
        """Nothing to release."""

    async def aclose(self, client: Any) -> None:
        """Nothing to release."""


def close_litellm_loop() -> None:
    """Close the event loop LiteLLM leaves in the main thread.

    LiteLLM's service logger calls ``asyncio.get_event_loop()`` inside sync calls, which
    creates a loop for the main thread that nobody closes; unclosed, it is reported as a
    ResourceWarning whenever it is collected (third-party behaviour, nothing to fix here).
    """
    policy = asyncio.get_event_loop_policy()
    try:
        with warnings.catch_warnings():  # newer Pythons deprecate the implicit loop we close
            warnings.simplefilter("ignore", DeprecationWarning)
            loop = policy.get_event_loop()
    except RuntimeError:
        return
    if not loop.is_running() and not loop.is_closed():
        loop.close()
        policy.set_event_loop(None)


def _stable(value: Any) -> Any:
    """Drop what LiteLLM stamps per call (its own timings and cost bookkeeping)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in ("created", "_response_ms")}
    return value


CASES.append(LiteLLMCompletion())
STREAMING.append(CASES[-1])
ASYNC.append(CASES[-1])
