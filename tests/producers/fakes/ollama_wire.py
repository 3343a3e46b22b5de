"""Ollama's wire format: JSON for chat and generate, NDJSON for their streams."""

from __future__ import annotations

import json
from typing import Any

from tests.producers.fakes.server import Reply

MODEL = "llama3.1"
PROMPT_TOKENS, OUTPUT_TOKENS = 26, 40
TOTAL_NS = 250_000_000


def _done(extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": MODEL, "created_at": "2024-07-01T00:00:00Z", **extra, "done": True,
        "done_reason": "stop", "total_duration": TOTAL_NS, "load_duration": 1_000_000,
        "prompt_eval_count": PROMPT_TOKENS, "prompt_eval_duration": 50_000_000,
        "eval_count": OUTPUT_TOKENS, "eval_duration": 190_000_000,
    }  # fmt: skip


def chat() -> Reply:
    """A chat response with token counts and durations (nanoseconds)."""
    return Reply.json(_done({"message": {"role": "assistant", "content": "Hello there"}}))


def generate() -> Reply:
    """A generate response."""
    return Reply.json(_done({"response": "Hello there", "context": [1, 2, 3]}))


def _partial(extra: dict[str, Any]) -> dict[str, Any]:
    return {"model": MODEL, "created_at": "2024-07-01T00:00:00Z", **extra, "done": False}


def chat_stream() -> Reply:
    """A streamed chat: one JSON object per line, counts in the last."""
    lines = [
        _partial({"message": {"role": "assistant", "content": "Hel"}}),
        _partial({"message": {"role": "assistant", "content": "lo"}}),
        _done({"message": {"role": "assistant", "content": ""}}),
    ]
    return Reply.stream([json.dumps(x).encode() + b"\n" for x in lines], "application/x-ndjson")


def generate_stream() -> Reply:
    """A streamed generate."""
    lines = [_partial({"response": "Hel"}), _partial({"response": "lo"}), _done({"response": ""})]
    return Reply.stream([json.dumps(x).encode() + b"\n" for x in lines], "application/x-ndjson")


def error(status: int) -> Reply:
    """An error as Ollama sends it."""
    return Reply.json({"error": f"fake {status}"}, status=status)
