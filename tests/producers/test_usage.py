"""Token counts, model names and server-side timings read from realistic LLM responses, each
given both as a dict and as an attribute object."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from llmtap.producers.usage import (
    Usage,
    extract_model,
    extract_processing_time,
    extract_usage,
)

# HTTP header collections stay mappings in SDK objects too (httpx.Headers, botocore dicts).
HEADER_KEYS = frozenset({"headers", "HTTPHeaders"})


def as_object(value: Any) -> Any:
    """Turn nested dicts into SimpleNamespace objects, the way SDK response models read."""
    if isinstance(value, dict):
        return SimpleNamespace(
            **{key: item if key in HEADER_KEYS else as_object(item) for key, item in value.items()}
        )
    if isinstance(value, list):
        return [as_object(item) for item in value]
    return value


def as_dict(value: Any) -> Any:
    """Leave the payload as the plain JSON-decoded dict."""
    return value


FORMS = [pytest.param(as_dict, id="dict"), pytest.param(as_object, id="object")]

OPENAI_CHAT = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The answer is 4.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 128,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}

OPENAI_CHAT_NO_DETAILS = {
    "id": "chatcmpl-abc",
    "object": "chat.completion",
    "model": "gpt-3.5-turbo-0125",
    "choices": [],
    "usage": {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "total_tokens": 42,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    },
}

OPENAI_CHAT_FINAL_CHUNK = {
    "id": "chatcmpl-abc",
    "object": "chat.completion.chunk",
    "created": 1741570283,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [],
    "usage": {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
}

OPENAI_CHAT_CHUNK_WITHOUT_USAGE = {
    "id": "chatcmpl-abc",
    "object": "chat.completion.chunk",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}],
    "usage": None,
}

RESPONSES_USAGE = {
    "input_tokens": 1500,
    "input_tokens_details": {"cached_tokens": 1024},
    "output_tokens": 900,
    "output_tokens_details": {"reasoning_tokens": 640},
    "total_tokens": 2400,
}

OPENAI_RESPONSES = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "model": "o3-mini-2025-01-31",
    "output": [
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Done.", "annotations": []}],
        }
    ],
    "usage": RESPONSES_USAGE,
}

ANTHROPIC_MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-20250514",
    "content": [{"type": "text", "text": "Hello!"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 50,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 10000,
        "output_tokens": 420,
        "service_tier": "standard",
    },
}

ANTHROPIC_MESSAGE_NO_CACHE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-haiku-20241022",
    "content": [{"type": "text", "text": "Hi"}],
    "stop_reason": "end_turn",
    "usage": {
        "input_tokens": 25,
        "cache_creation_input_tokens": None,
        "cache_read_input_tokens": None,
        "output_tokens": 10,
    },
}

ANTHROPIC_MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 50,
            "cache_creation_input_tokens": 2000,
            "cache_read_input_tokens": 10000,
            "output_tokens": 1,
        },
    },
}

ANTHROPIC_CONTENT_DELTA = {
    "type": "content_block_delta",
    "index": 0,
    "delta": {"type": "text_delta", "text": "Hello"},
}

ANTHROPIC_MESSAGE_DELTA = {
    "type": "message_delta",
    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
    "usage": {"output_tokens": 420},
}

OLLAMA_CHAT = {
    "model": "llama3.2",
    "created_at": "2024-12-06T21:31:47.123Z",
    "message": {"role": "assistant", "content": "The sky is blue because..."},
    "done": True,
    "done_reason": "stop",
    "total_duration": 4883583458,
    "load_duration": 1334875,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 342546000,
    "eval_count": 282,
    "eval_duration": 4535599000,
}

OLLAMA_GENERATE = {
    "model": "qwen2.5:7b",
    "created_at": "2024-12-06T21:33:01.5Z",
    "response": "Paris.",
    "done": True,
    "done_reason": "stop",
    "context": [1, 2, 3],
    "total_duration": 250000000,
    "load_duration": 2000000,
    "prompt_eval_count": 31,
    "prompt_eval_duration": 40000000,
    "eval_count": 3,
    "eval_duration": 200000000,
}

OLLAMA_CHUNK = {
    "model": "llama3.2",
    "created_at": "2024-12-06T21:31:46.9Z",
    "message": {"role": "assistant", "content": "The"},
    "done": False,
}

BEDROCK_CONVERSE = {
    "ResponseMetadata": {
        "RequestId": "5d1c7e7a-0b5c-4a8e-9f3e-0c2b2d6e1f00",
        "HTTPStatusCode": 200,
        "HTTPHeaders": {
            "date": "Tue, 10 Dec 2024 12:00:00 GMT",
            "content-type": "application/json",
            "content-length": "412",
            "connection": "keep-alive",
            "x-amzn-requestid": "5d1c7e7a-0b5c-4a8e-9f3e-0c2b2d6e1f00",
        },
        "RetryAttempts": 0,
    },
    "output": {"message": {"role": "assistant", "content": [{"text": "Hi there."}]}},
    "stopReason": "end_turn",
    "usage": {
        "inputTokens": 30,
        "outputTokens": 250,
        "totalTokens": 3280,
        "cacheReadInputTokens": 2000,
        "cacheWriteInputTokens": 1000,
    },
    "metrics": {"latencyMs": 1432},
}

BEDROCK_CONVERSE_NO_CACHE = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Hi."}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 12, "outputTokens": 4, "totalTokens": 16},
    "metrics": {"latencyMs": 310},
}

BEDROCK_INVOKE_MODEL = {
    "ResponseMetadata": {
        "RequestId": "a1b2c3d4",
        "HTTPStatusCode": 200,
        "HTTPHeaders": {
            "date": "Tue, 10 Dec 2024 12:00:00 GMT",
            "content-type": "application/json",
            "content-length": "318",
            "connection": "keep-alive",
            "x-amzn-requestid": "a1b2c3d4",
            "x-amzn-bedrock-invocation-latency": "812",
            "x-amzn-bedrock-output-token-count": "45",
            "x-amzn-bedrock-input-token-count": "120",
        },
        "RetryAttempts": 0,
    },
    "contentType": "application/json",
}

OPENAI_RAW_RESPONSE = {
    "headers": {
        "content-type": "application/json",
        "openai-organization": "user-abc",
        "openai-processing-ms": "523",
        "openai-version": "2020-10-01",
        "x-request-id": "req_8c1d2e3f",
    },
    "status_code": 200,
}

LITELLM_OPENAI = {
    "id": "chatcmpl-7f0c",
    "created": 1733832000,
    "model": "gpt-4o-mini",
    "object": "chat.completion",
    "system_fingerprint": "fp_0ba0d124f1",
    "choices": [
        {
            "finish_reason": "stop",
            "index": 0,
            "message": {"content": "Hi!", "role": "assistant", "tool_calls": None},
        }
    ],
    "usage": {
        "completion_tokens": 9,
        "prompt_tokens": 1300,
        "total_tokens": 1309,
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": None},
        "prompt_tokens_details": {"cached_tokens": 1152, "audio_tokens": None},
    },
}

LITELLM_ANTHROPIC = {
    "id": "chatcmpl-2a9e",
    "created": 1733832000,
    "model": "claude-3-5-sonnet-20241022",
    "object": "chat.completion",
    "choices": [],
    "usage": {
        "completion_tokens": 80,
        "prompt_tokens": 3500,
        "total_tokens": 3580,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
        "cache_creation_input_tokens": 500,
        "cache_read_input_tokens": 2900,
    },
}

USAGE_CASES = [
    pytest.param(OPENAI_CHAT, Usage(2006, 300, 1920, 0, 128), id="openai-chat"),
    pytest.param(OPENAI_CHAT_NO_DETAILS, Usage(12, 30), id="openai-chat-no-details"),
    pytest.param(OPENAI_CHAT_FINAL_CHUNK, Usage(19, 10), id="openai-chat-final-chunk"),
    pytest.param(OPENAI_RESPONSES, Usage(1500, 900, 1024, 0, 640), id="openai-responses"),
    # Anthropic's input_tokens excludes the cache; llmtap's input counts it: 50 + 10000 + 2000.
    pytest.param(ANTHROPIC_MESSAGE, Usage(12050, 420, 10000, 2000, 0), id="anthropic-message"),
    pytest.param(ANTHROPIC_MESSAGE_NO_CACHE, Usage(25, 10), id="anthropic-message-no-cache"),
    pytest.param(ANTHROPIC_MESSAGE_DELTA, Usage(0, 420), id="anthropic-message-delta"),
    pytest.param(OLLAMA_CHAT, Usage(26, 282), id="ollama-chat"),
    pytest.param(OLLAMA_GENERATE, Usage(31, 3), id="ollama-generate"),
    # Bedrock's inputTokens excludes the cache too: 30 + 2000 + 1000.
    pytest.param(BEDROCK_CONVERSE, Usage(3030, 250, 2000, 1000, 0), id="bedrock-converse"),
    pytest.param(BEDROCK_CONVERSE_NO_CACHE, Usage(12, 4), id="bedrock-converse-no-cache"),
    pytest.param(LITELLM_OPENAI, Usage(1300, 9, 1152, 0, 0), id="litellm-openai"),
    pytest.param(LITELLM_ANTHROPIC, Usage(3500, 80, 2900, 500, 0), id="litellm-anthropic"),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("payload", "expected"), USAGE_CASES)
def test_extract_usage(
    payload: dict[str, Any], expected: Usage, form: Callable[[Any], Any]
) -> None:
    """extract_usage reads each provider's token counts into llmtap's convention."""
    assert extract_usage(form(payload)) == expected


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(OPENAI_CHAT, id="openai-chat"),
        pytest.param(ANTHROPIC_MESSAGE, id="anthropic-message"),
        pytest.param(BEDROCK_CONVERSE, id="bedrock-converse"),
    ],
)
def test_input_plus_output_matches_reported_total(payload: dict[str, Any]) -> None:
    """Input (cache included) plus output equals the total the provider itself reports."""
    usage = extract_usage(payload)
    assert usage is not None
    reported = payload["usage"].get("total_tokens") or payload["usage"].get("totalTokens")
    if reported is None:  # Anthropic reports no total; rebuild it from its own parts
        raw = payload["usage"]
        reported = sum(
            raw[name]
            for name in (
                "input_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
                "output_tokens",
            )
        )
    assert usage.input_tokens + usage.output_tokens == reported


@pytest.mark.parametrize("form", [as_dict, as_object], ids=["dict", "object"])
def test_extract_usage_from_anthropic_message_start(form: Callable[[Any], Any]) -> None:
    """extract_usage reads the usage nested in Anthropic's message_start stream event."""
    assert extract_usage(form(ANTHROPIC_MESSAGE_START)) == Usage(12050, 1, 10000, 2000, 0)


RESPONSE_COMPLETED_EVENT = {
    "type": "response.completed",
    "sequence_number": 42,
    "response": {**OPENAI_RESPONSES, "usage": RESPONSES_USAGE},
}


@pytest.mark.parametrize("form", [as_dict, as_object], ids=["dict", "object"])
def test_extract_usage_from_responses_completed_event(form: Callable[[Any], Any]) -> None:
    """extract_usage reads the usage of a streamed Responses call from response.completed."""
    assert extract_usage(form(RESPONSE_COMPLETED_EVENT)) == Usage(1500, 900, 1024, 0, 640)


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(None, id="None"),
        pytest.param("The answer is 4.", id="str"),
        pytest.param(b"{}", id="bytes"),
        pytest.param(42, id="int"),
        pytest.param(1.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param([], id="empty-list"),
        pytest.param([OPENAI_CHAT], id="list-of-responses"),
        pytest.param({}, id="empty-dict"),
        pytest.param({"id": "x", "choices": []}, id="dict-without-usage"),
        pytest.param({"usage": None}, id="usage-None"),
        pytest.param({"usage": {}}, id="usage-empty"),
        pytest.param({"usage": {"total_tokens": 5}}, id="usage-unknown-fields"),
        pytest.param(SimpleNamespace(), id="bare-object"),
        pytest.param(as_object(OPENAI_CHAT_CHUNK_WITHOUT_USAGE), id="openai-chunk-object"),
        pytest.param(OPENAI_CHAT_CHUNK_WITHOUT_USAGE, id="openai-chunk-dict"),
        pytest.param(ANTHROPIC_CONTENT_DELTA, id="anthropic-content-delta-dict"),
        pytest.param(as_object(ANTHROPIC_CONTENT_DELTA), id="anthropic-content-delta-object"),
        pytest.param(OLLAMA_CHUNK, id="ollama-chunk-dict"),
        pytest.param(as_object(OLLAMA_CHUNK), id="ollama-chunk-object"),
        pytest.param(BEDROCK_INVOKE_MODEL, id="bedrock-invoke-model"),
    ],
)
def test_extract_usage_of_non_response_is_none(response: Any) -> None:
    """extract_usage returns None for values and chunks that report no usage."""
    assert extract_usage(response) is None


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": -5, "completion_tokens": 12.9}, Usage(0, 12)),
        ({"prompt_tokens": True, "completion_tokens": "7"}, Usage(0, 0)),
        ({"input_tokens": None, "output_tokens": 3}, Usage(0, 3)),
        ({"inputTokens": -1, "outputTokens": 2.0, "cacheReadInputTokens": "9"}, Usage(0, 2)),
    ],
)
def test_odd_counts_become_non_negative_ints(usage: dict[str, Any], expected: Usage) -> None:
    """Negative, boolean and non-numeric counts read as 0, and floats as ints."""
    found = extract_usage({"usage": usage})
    assert found == expected
    assert found is not None
    for value in (
        found.input_tokens,
        found.output_tokens,
        found.cache_read_tokens,
        found.cache_write_tokens,
        found.reasoning_tokens,
    ):
        assert type(value) is int
        assert value >= 0


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(OPENAI_CHAT, "gpt-4o-2024-08-06", id="openai-chat"),
        pytest.param(OPENAI_CHAT_FINAL_CHUNK, "gpt-4o-mini-2024-07-18", id="openai-chunk"),
        pytest.param(OPENAI_RESPONSES, "o3-mini-2025-01-31", id="openai-responses"),
        pytest.param(ANTHROPIC_MESSAGE, "claude-sonnet-4-20250514", id="anthropic-message"),
        pytest.param(OLLAMA_CHAT, "llama3.2", id="ollama-chat"),
        pytest.param(OLLAMA_GENERATE, "qwen2.5:7b", id="ollama-generate"),
        pytest.param(LITELLM_OPENAI, "gpt-4o-mini", id="litellm"),
        pytest.param(BEDROCK_CONVERSE, None, id="bedrock-converse-has-no-model"),
        pytest.param({"model": ""}, None, id="empty-model"),
        pytest.param({"model": None}, None, id="None-model"),
        pytest.param({"model": 3}, None, id="non-str-model"),
        pytest.param({}, None, id="no-model"),
    ],
)
def test_extract_model(payload: dict[str, Any], expected: str | None, form: Any) -> None:
    """extract_model returns the non-empty model name a response reports, else None."""
    assert extract_model(form(payload)) == expected


@pytest.mark.parametrize(
    "response", [None, "gpt-4o", b"gpt-4o", 7, 2.5, ["gpt-4o"], [{"model": "gpt-4o"}]]
)
def test_extract_model_of_non_response_is_none(response: Any) -> None:
    """extract_model returns None for values that are not responses."""
    assert extract_model(response) is None


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(OLLAMA_CHAT, 4.883583458, id="ollama-chat-total-duration-ns"),
        pytest.param(OLLAMA_GENERATE, 0.25, id="ollama-generate-total-duration-ns"),
        pytest.param(BEDROCK_CONVERSE, 1.432, id="bedrock-converse-latency-ms"),
        pytest.param(BEDROCK_CONVERSE_NO_CACHE, 0.31, id="bedrock-converse-no-metadata"),
        pytest.param(BEDROCK_INVOKE_MODEL, 0.812, id="bedrock-invoke-model-header"),
        pytest.param(OPENAI_RAW_RESPONSE, 0.523, id="openai-processing-ms-header"),
    ],
)
def test_extract_processing_time(
    payload: dict[str, Any], expected: float, form: Callable[[Any], Any]
) -> None:
    """extract_processing_time converts each backend's reported timing to seconds."""
    assert extract_processing_time(form(payload)) == pytest.approx(expected)


def test_processing_time_reads_headers_of_an_object_response() -> None:
    """A raw response object whose headers mapping carries openai-processing-ms is read."""
    raw = SimpleNamespace(headers={"openai-processing-ms": "1200"}, status_code=200)
    assert extract_processing_time(raw) == pytest.approx(1.2)


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(None, id="None"),
        pytest.param("523", id="str"),
        pytest.param(523, id="int"),
        pytest.param(0.5, id="float"),
        pytest.param([OPENAI_RAW_RESPONSE], id="list"),
        pytest.param({}, id="empty-dict"),
        pytest.param(OPENAI_CHAT, id="openai-chat-without-headers"),
        pytest.param(as_object(ANTHROPIC_MESSAGE), id="anthropic-message"),
        pytest.param(OLLAMA_CHUNK, id="ollama-unfinished-chunk"),
        pytest.param({"total_duration": 0}, id="zero-total-duration"),
        pytest.param({"metrics": {"latencyMs": 0}}, id="zero-latency"),
        pytest.param({"headers": {"content-type": "application/json"}}, id="no-timing-header"),
        pytest.param({"headers": {"openai-processing-ms": "abc"}}, id="garbage-header"),
        pytest.param(
            {"ResponseMetadata": {"HTTPHeaders": {"content-type": "application/json"}}},
            id="bedrock-without-latency-header",
        ),
    ],
)
def test_extract_processing_time_without_timing_is_none(response: Any) -> None:
    """extract_processing_time returns None when nothing reports a server-side time."""
    assert extract_processing_time(response) is None


@pytest.mark.parametrize(
    ("current", "chunk", "expected"),
    [
        pytest.param(Usage(), Usage(10, 5, 1, 2, 3), Usage(10, 5, 1, 2, 3), id="from-empty"),
        pytest.param(
            Usage(12050, 1, 10000, 2000, 0),
            Usage(0, 420),
            Usage(12050, 420, 10000, 2000, 0),
            id="anthropic-start-then-delta",
        ),
        pytest.param(
            Usage(10, 5, 1, 2, 3), Usage(3, 2, 0, 0, 1), Usage(10, 5, 1, 2, 3), id="never-lower"
        ),
        pytest.param(Usage(10, 0, 0, 0, 0), Usage(0, 7, 0, 0, 4), Usage(10, 7, 0, 0, 4), id="mix"),
        pytest.param(Usage(10, 20), Usage(10, 20), Usage(10, 20), id="repeat-is-not-added"),
    ],
)
def test_absorb_takes_max_per_field(current: Usage, chunk: Usage, expected: Usage) -> None:
    """Usage.absorb keeps the larger count of each field, since chunk counts are cumulative."""
    current.absorb(chunk)
    assert current == expected


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param(
            [
                as_object(ANTHROPIC_MESSAGE_START),
                as_object(ANTHROPIC_CONTENT_DELTA),
                as_object({**ANTHROPIC_MESSAGE_DELTA, "usage": {"output_tokens": 15}}),
                as_object(ANTHROPIC_MESSAGE_DELTA),
                as_object({"type": "message_stop"}),
            ],
            id="anthropic-stream",
        ),
        pytest.param(
            [
                as_object(OPENAI_CHAT_CHUNK_WITHOUT_USAGE),
                as_object(OPENAI_CHAT_CHUNK_WITHOUT_USAGE),
                as_object(
                    {
                        **OPENAI_CHAT_FINAL_CHUNK,
                        "usage": {"prompt_tokens": 12050, "completion_tokens": 420},
                    }
                ),
            ],
            id="openai-stream",
        ),
    ],
)
def test_stream_chunks_absorbed_give_call_usage(chunks: list[Any]) -> None:
    """Absorbing every chunk's usage gives the whole streamed call's counts."""
    total = Usage()
    for chunk in chunks:
        found = extract_usage(chunk)
        if found is not None:
            total.absorb(found)
    assert (total.input_tokens, total.output_tokens) == (12050, 420)
