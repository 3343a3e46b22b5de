"""OpenAI's wire format: chat completions, Responses and embeddings, as JSON and SSE."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from tests.producers.fakes.server import Reply

MODEL = "gpt-4o-mini"
SERVED_MODEL = "gpt-4o-mini-2024-07-18"
PROCESSING_MS = "240"
# prompt, completion, cached prompt, reasoning
USAGE = (1200, 300, 1024, 128)


def _chat_usage() -> dict[str, Any]:
    prompt, completion, cached, reasoning = USAGE
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
    }


def chat(content: str = "Hello there") -> Reply:
    """A chat completion with cached and reasoning tokens and a processing-ms header."""
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": SERVED_MODEL,
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _chat_usage(),
    }
    return Reply.json(body, openai_processing_ms=PROCESSING_MS, x_request_id="req_1")


def sse(events: list[dict[str, Any]], done: bool = True, named: bool = False) -> list[bytes]:
    """Frame events as Server-Sent Events (with ``event:`` lines when ``named``)."""
    frames = []
    for event in events:
        head = f"event: {event['type']}\n" if named else ""
        frames.append(f"{head}data: {json.dumps(event)}\n\n".encode())
    if done:
        frames.append(b"data: [DONE]\n\n")
    return frames


def chat_stream(include_usage: bool = True) -> Reply:
    """A streamed chat completion; with ``include_usage`` the last chunk carries the usage."""
    base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": SERVED_MODEL, "system_fingerprint": "fp_1"}  # fmt: skip
    deltas = [{"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}, {}]
    chunks = [
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": "stop" if not delta else None,
                }
            ],
        }
        for delta in deltas
    ]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _chat_usage()})
    return Reply.stream(sse(chunks), "text/event-stream", openai_processing_ms=PROCESSING_MS)


def _response_body(status: str = "completed") -> dict[str, Any]:
    prompt, completion, cached, reasoning = USAGE
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": SERVED_MODEL,
        "status": status,
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello there", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion,
        },
    }


def response() -> Reply:
    """A Responses API response."""
    return Reply.json(_response_body(), openai_processing_ms=PROCESSING_MS)


def response_stream() -> Reply:
    """A streamed Responses API call ending with ``response.completed`` (which has usage)."""
    created = {**_response_body("in_progress"), "output": [], "usage": None}
    events = [
        {"type": "response.created", "sequence_number": 0, "response": created},
        {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1",
         "output_index": 0, "content_index": 0, "delta": "Hello", "logprobs": []},
        {"type": "response.completed", "sequence_number": 2, "response": _response_body()},
    ]  # fmt: skip
    return Reply.stream(
        sse(events, done=False, named=True), "text/event-stream", openai_processing_ms="12"
    )


EMBED_MODEL = "text-embedding-3-small"
EMBED_TOKENS = 8


def embeddings() -> Reply:
    """An embeddings response, base64-encoded as the SDK asks by default."""
    vector = base64.b64encode(struct.pack("<3f", 0.25, -0.5, 1.0)).decode()
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "model": EMBED_MODEL,
        "usage": {"prompt_tokens": EMBED_TOKENS, "total_tokens": EMBED_TOKENS},
    }
    return Reply.json(body, openai_processing_ms="15")


def error(status: int) -> Reply:
    """An API error; ``retry-after-ms`` keeps the client's own retries fast."""
    kind = {429: "rate_limit_exceeded", 500: "server_error"}.get(status, "invalid_request_error")
    body = {"error": {"message": f"fake {status}", "type": kind, "param": None, "code": kind}}
    return Reply.json(body, status=status, retry_after_ms="1", openai_processing_ms="3")
