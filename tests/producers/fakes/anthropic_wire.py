"""Anthropic's Messages wire format: JSON messages and the SSE event stream."""

from __future__ import annotations

from typing import Any

from tests.producers.fakes.openai_wire import sse
from tests.producers.fakes.server import Reply

MODEL = "claude-3-5-haiku-20241022"
# uncached input, output, cache read, cache write
USAGE = (200, 300, 1000, 50)


def _usage(output: int) -> dict[str, Any]:
    uncached, _, read, write = USAGE
    return {"input_tokens": uncached, "output_tokens": output,
            "cache_read_input_tokens": read, "cache_creation_input_tokens": write}  # fmt: skip


def _message(content: list[dict[str, Any]], output: int, stop: str | None) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": _usage(output)}  # fmt: skip


def message() -> Reply:
    """A message with cache reads and writes."""
    body = _message([{"type": "text", "text": "Hello there"}], USAGE[1], "end_turn")
    return Reply.json(body, request_id="req_1")


def message_stream() -> Reply:
    """A streamed message: usage in ``message_start`` and the final ``message_delta``."""
    events = [
        {"type": "message_start", "message": _message([], 1, None)},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": " there"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": USAGE[1]}},
        {"type": "message_stop"},
    ]  # fmt: skip
    return Reply.stream(sse(events, done=False, named=True), "text/event-stream")


def error(status: int) -> Reply:
    """An API error in Anthropic's shape; ``retry-after-ms`` keeps retries fast."""
    kind = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}.get(
        status, "invalid_request_error"
    )
    body = {"type": "error", "error": {"type": kind, "message": f"fake {status}"}}
    return Reply.json(body, status=status, retry_after_ms="1")
