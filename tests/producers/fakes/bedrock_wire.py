"""Bedrock Runtime's wire format: Converse and InvokeModel JSON, and the binary AWS event
stream of ConverseStream (encoded here frame by frame, CRCs included, as botocore reads it)."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

from tests.producers.fakes.server import Reply

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
# uncached input, output, cache read, cache write
USAGE = (200, 300, 1000, 0)
LATENCY_MS = 240


def _usage() -> dict[str, Any]:
    uncached, output, read, write = USAGE
    return {"inputTokens": uncached, "outputTokens": output, "totalTokens": uncached + output,
            "cacheReadInputTokens": read, "cacheWriteInputTokens": write}  # fmt: skip


def converse() -> Reply:
    """A Converse response with usage and ``metrics.latencyMs``."""
    body = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hello there"}]}},
        "stopReason": "end_turn",
        "usage": _usage(),
        "metrics": {"latencyMs": LATENCY_MS},
    }
    return Reply.json(body, x_amzn_requestid="req-1")


INVOKE_TOKENS = (1200, 300)


def invoke() -> Reply:
    """An InvokeModel response: the model's own JSON body, counts and latency in headers."""
    prompt, output = INVOKE_TOKENS
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-haiku",
            "content": [{"type": "text", "text": "Hello there"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": prompt, "output_tokens": output}}  # fmt: skip
    return Reply.json(
        body,
        x_amzn_requestid="req-2",
        x_amzn_bedrock_invocation_latency=str(LATENCY_MS),
        x_amzn_bedrock_input_token_count=str(INVOKE_TOKENS[0]),
        x_amzn_bedrock_output_token_count=str(INVOKE_TOKENS[1]),
    )


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack(">B", len(raw_name))
        + raw_name
        + b"\x07"
        + struct.pack(">H", len(raw_value))
        + raw_value
    )


def frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One event-stream message: prelude, prelude CRC, string headers, payload, message CRC."""
    headers = (
        _header(":event-type", event_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", "event")
    )
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def converse_stream() -> Reply:
    """A ConverseStream response; the ``metadata`` event carries usage and latency."""
    frames = [
        frame("messageStart", {"role": "assistant"}),
        frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
        frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}}),
        frame("contentBlockStop", {"contentBlockIndex": 0}),
        frame("messageStop", {"stopReason": "end_turn"}),
        frame("metadata", {"usage": _usage(), "metrics": {"latencyMs": LATENCY_MS}}),
    ]
    return Reply.stream(frames, "application/vnd.amazon.eventstream", x_amzn_requestid="req-3")


def error(status: int) -> Reply:
    """A Bedrock service error, typed by the ``x-amzn-errortype`` header."""
    code = {429: "ThrottlingException", 500: "InternalServerException"}.get(
        status, "ValidationException"
    )
    return Reply.json({"message": f"fake {status}"}, status=status, x_amzn_errortype=f"{code}:")


def invoke_stream() -> Reply:
    """An InvokeModelWithResponseStream response: base64 chunks of the model's own events,
    the last with Bedrock's invocation metrics."""
    prompt, output = INVOKE_TOKENS
    events = [
        {"type": "message_start", "message": {"model": "claude-3-haiku", "usage": {}}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": prompt, "outputTokenCount": output,
            "invocationLatency": LATENCY_MS, "firstByteLatency": 90}},
    ]  # fmt: skip
    frames = [
        frame("chunk", {"bytes": base64.b64encode(json.dumps(event).encode()).decode()})
        for event in events
    ]
    return Reply.stream(frames, "application/vnd.amazon.eventstream", x_amzn_requestid="req-4")
