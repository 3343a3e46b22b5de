"""Token counts and backend-reported timings read from LLM responses and stream chunks.

Recognised shapes: OpenAI chat/completions (``usage.prompt_tokens``) and Responses
(``usage.input_tokens`` with ``input_tokens_details``), Anthropic (``usage.input_tokens`` plus
``cache_read_input_tokens``/``cache_creation_input_tokens``), Ollama (``prompt_eval_count``,
``eval_count``, ``total_duration``), Bedrock Converse (``usage.inputTokens``, ``metrics.latencyMs``)
and LiteLLM responses (OpenAI-shaped). Objects and dicts are read alike.

Convention: ``input_tokens`` counts every prompt token, cached ones included; ``cache_read`` and
``cache_write`` are the parts of it billed at cache rates. ``output_tokens`` includes reasoning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

_MISSING: Final = object()


@dataclass(slots=True)
class Usage:
    """Token counts of one call; every field is a non-negative int."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def absorb(self, other: Usage) -> None:
        """Fold a stream chunk's usage into this one (counts in chunks are cumulative)."""
        self.input_tokens = max(self.input_tokens, other.input_tokens)
        self.output_tokens = max(self.output_tokens, other.output_tokens)
        self.cache_read_tokens = max(self.cache_read_tokens, other.cache_read_tokens)
        self.cache_write_tokens = max(self.cache_write_tokens, other.cache_write_tokens)
        self.reasoning_tokens = max(self.reasoning_tokens, other.reasoning_tokens)


def field(obj: Any, name: str) -> Any:
    """Return ``obj.name`` or ``obj[name]``, or None when neither exists."""
    if type(obj) is dict:  # the common case first: plain JSON bodies
        return obj.get(name)
    if obj is None:
        return None
    value = getattr(obj, name, _MISSING)
    if value is not _MISSING:
        return value
    return obj.get(name) if isinstance(obj, Mapping) else None


def _count(obj: Any, name: str) -> int:
    value = field(obj, name)
    kind = type(value)
    if (kind is int or kind is float) and value > 0:
        return int(value)
    return 0


def _positive(value: Any) -> int:
    kind = type(value)
    return int(value) if (kind is int or kind is float) and value > 0 else 0


#: Token counts as a plain tuple: (input, output, cache_read, cache_write, reasoning).
Counts = tuple[int, int, int, int, int]


def openai_dict_counts(usage: dict[str, Any]) -> Counts:
    """Return the counts of an OpenAI chat ``usage`` dict (a plain JSON body) as a tuple.

    The hot path of the publisher thread: no :class:`Usage` built, positive ints (the usual
    values) taken as they are and anything else through :func:`_positive` (same result).
    """
    get = usage.get
    prompt, completion = get("prompt_tokens"), get("completion_tokens")
    prompt_details = get("prompt_tokens_details")
    completion_details = get("completion_tokens_details")
    cached = _positive(prompt_details.get("cached_tokens")) if type(prompt_details) is dict else 0
    if not cached:
        cache_read = get("cache_read_input_tokens")
        cached = 0 if cache_read is None else _positive(cache_read)
    cache_write = get("cache_creation_input_tokens")
    return (
        prompt if type(prompt) is int and prompt > 0 else _positive(prompt),
        completion if type(completion) is int and completion > 0 else _positive(completion),
        cached,
        0 if cache_write is None else _positive(cache_write),
        _positive(completion_details.get("reasoning_tokens"))
        if type(completion_details) is dict
        else 0,
    )


def _openai_chat_dict(usage: dict[str, Any]) -> Usage:
    """The common case of :func:`_openai_chat`, a plain JSON body, without the generic reads."""
    return Usage(*openai_dict_counts(usage))


def _openai_chat(usage: Any) -> Usage:
    prompt_details = field(usage, "prompt_tokens_details")
    completion_details = field(usage, "completion_tokens_details")
    return Usage(
        input_tokens=_count(usage, "prompt_tokens"),
        output_tokens=_count(usage, "completion_tokens"),
        cache_read_tokens=_count(prompt_details, "cached_tokens")
        or _count(usage, "cache_read_input_tokens"),
        cache_write_tokens=_count(usage, "cache_creation_input_tokens"),
        reasoning_tokens=_count(completion_details, "reasoning_tokens")
        if completion_details is not None
        else 0,
    )


def _anthropic(usage: Any) -> Usage:
    cache_read = _count(usage, "cache_read_input_tokens")
    cache_write = _count(usage, "cache_creation_input_tokens")
    return Usage(
        input_tokens=_count(usage, "input_tokens") + cache_read + cache_write,
        output_tokens=_count(usage, "output_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _openai_responses(usage: Any) -> Usage:
    return Usage(
        input_tokens=_count(usage, "input_tokens"),
        output_tokens=_count(usage, "output_tokens"),
        cache_read_tokens=_count(field(usage, "input_tokens_details"), "cached_tokens"),
        reasoning_tokens=_count(field(usage, "output_tokens_details"), "reasoning_tokens"),
    )


def _bedrock(usage: Any) -> Usage:
    cache_read = _count(usage, "cacheReadInputTokens")
    cache_write = _count(usage, "cacheWriteInputTokens")
    return Usage(
        input_tokens=_count(usage, "inputTokens") + cache_read + cache_write,
        output_tokens=_count(usage, "outputTokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _from_usage_block(usage: Any) -> Usage | None:
    if field(usage, "prompt_tokens") is not None or field(usage, "completion_tokens") is not None:
        return _openai_chat(usage)
    if field(usage, "inputTokens") is not None:
        return _bedrock(usage)
    if field(usage, "input_tokens") is None and field(usage, "output_tokens") is None:
        return None
    anthropic = ("cache_read_input_tokens", "cache_creation_input_tokens")
    if any(field(usage, name) is not None for name in anthropic):
        return _anthropic(usage)
    if field(usage, "input_tokens_details") is not None:
        return _openai_responses(usage)
    return _anthropic(usage)  # bare input/output counts: both conventions agree


_SCALARS: Final = (str, bytes, int, float, bool, type(None), list, tuple)


def extract_usage(response: Any) -> Usage | None:
    """Return the token usage a response (or stream chunk) reports, or None if it has none."""
    if type(response) in _SCALARS:
        return None
    usage = field(response, "usage")
    if type(usage) is dict and "prompt_tokens" in usage:
        return _openai_chat_dict(usage)
    if usage is not None:
        found = _from_usage_block(usage)
        if found is not None:
            return found
    for wrapper in ("message", "response"):  # Anthropic's message_start, OpenAI's completed
        inner = field(response, wrapper)
        if inner is not None and type(inner) not in _SCALARS:
            block = field(inner, "usage")
            if block is not None:
                return _from_usage_block(block)
    if (
        field(response, "eval_count") is not None
        or field(response, "prompt_eval_count") is not None
    ):
        return Usage(
            input_tokens=_count(response, "prompt_eval_count"),
            output_tokens=_count(response, "eval_count"),
        )
    return None


def extract_model(response: Any) -> str | None:
    """Return the model name a response reports, if any."""
    if type(response) in _SCALARS:
        return None
    model = field(response, "model")
    return model if isinstance(model, str) and model else None


def _header(headers: Any, name: str) -> Any:
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    return getter(name) if callable(getter) else None


# The keys :func:`extract_processing_time` reads in a plain dict response.
_TIMING_KEYS: Final = frozenset({"total_duration", "metrics", "headers", "ResponseMetadata"})


def extract_processing_time(response: Any) -> float | None:
    """Return the server-side processing time in seconds a response reports, or None.

    Sources: OpenAI's ``openai-processing-ms`` header (raw responses), Bedrock's
    ``x-amzn-bedrock-invocation-latency`` header or Converse ``metrics.latencyMs``, and Ollama's
    ``total_duration`` in nanoseconds.
    """
    kind = type(response)
    if kind in _SCALARS or (kind is dict and _TIMING_KEYS.isdisjoint(response)):
        return None
    ns = field(response, "total_duration")
    if isinstance(ns, int) and ns > 0:
        return ns / 1e9
    metrics = field(response, "metrics")
    latency_ms = field(metrics, "latencyMs") if metrics is not None else None
    if isinstance(latency_ms, int | float) and latency_ms > 0:
        return float(latency_ms) / 1000.0
    headers = field(response, "headers")
    if headers is None:
        metadata = field(response, "ResponseMetadata")
        if metadata is None:
            return None
        headers = field(metadata, "HTTPHeaders")
    for name in ("openai-processing-ms", "x-amzn-bedrock-invocation-latency"):
        value = _header(headers, name)
        if value is not None:
            try:
                return max(float(value), 0.0) / 1000.0
            except (TypeError, ValueError):
                return None
    return None
