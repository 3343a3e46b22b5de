"""AWS Bedrock integration: boto3 ``bedrock-runtime`` clients.

Profiles ``converse``, ``converse_stream``, ``invoke_model`` and
``invoke_model_with_response_stream``. Usage and processing time come from what Bedrock
reports: Converse's ``usage`` and ``metrics.latencyMs`` (in the response, or the stream's
``metadata`` event), InvokeModel's ``x-amzn-bedrock-*`` headers, and the invocation metrics
in the last chunk of an InvokeModel stream. Retries are botocore's ``RetryAttempts``.
Neither boto3 nor botocore is imported here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, Final

from llmtap.producers.integrations.calls import (
    Tap,
    absorb,
    failure,
    hook_close,
    patch,
    perf,
    record,
    tapped,
    unprofiled_stream,
)
from llmtap.producers.profiler import Profiler
from llmtap.producers.recorder import CallDetails, CallSpec
from llmtap.producers.usage import Usage, extract_processing_time, extract_usage

_HEADER = "x-amzn-bedrock-"
_METRICS: Final = b"amazon-bedrock-invocationMetrics"

# (profiler, spec, model id, t0, result) -> the result, recorded or tapped
Done = Callable[[Profiler, CallSpec, Any, float, Any], Any]


def retries(response: Any) -> int | None:
    """Return botocore's ``RetryAttempts`` from a response or error response dict."""
    if not isinstance(response, dict):
        return None
    attempts = response.get("ResponseMetadata", {}).get("RetryAttempts")
    return attempts if isinstance(attempts, int) else None


def _count(headers: dict[str, str], name: str) -> int:
    value = headers.get(_HEADER + name, "")
    return int(value) if value.isdigit() else 0


def header_usage(headers: dict[str, str]) -> Usage | None:
    """Return the token counts of InvokeModel's headers (input includes cached tokens)."""
    if _HEADER + "input-token-count" not in headers:
        return None
    read = _count(headers, "cache-read-input-token-count")
    write = _count(headers, "cache-write-input-token-count")
    return Usage(_count(headers, "input-token-count") + read + write,
                 _count(headers, "output-token-count"), read, write)  # fmt: skip


def read_converse_event(details: CallDetails, event: Any) -> None:
    """Take usage and latency from a ConverseStream ``metadata`` event."""
    metadata = event.get("metadata") if isinstance(event, dict) else None
    if metadata is not None:
        absorb(details, extract_usage(metadata))
        details.processing_time = extract_processing_time(metadata)


def read_invoke_chunk(details: CallDetails, event: Any) -> None:
    """Take the invocation metrics Bedrock appends to the last chunk of an InvokeModel stream."""
    data = event.get("chunk", {}).get("bytes") if isinstance(event, dict) else None
    if not isinstance(data, bytes) or _METRICS not in data:
        return
    try:
        metrics = json.loads(data)[_METRICS.decode()]
    except (ValueError, KeyError, TypeError):
        return
    read = int(metrics.get("cacheReadInputTokenCount") or 0)
    write = int(metrics.get("cacheWriteInputTokenCount") or 0)
    inputs = int(metrics.get("inputTokenCount") or 0) + read + write
    absorb(details, Usage(inputs, int(metrics.get("outputTokenCount") or 0), read, write))
    latency = metrics.get("invocationLatency")
    if isinstance(latency, int | float) and latency >= 0:
        details.processing_time = latency / 1000.0


def tap_event_stream(stream: Any, tap: Tap) -> bool:
    """Tap a botocore ``EventStream`` (its own object stays in the response)."""
    raw = getattr(stream, "_event_generator", None)
    parse = getattr(stream, "_parse_event", None)
    if raw is None or parse is None:
        return False

    def parse_event(event: Any) -> Any:
        try:
            parsed = parse(event)
        except BaseException as exc:
            tap.finish(exc)
            raise
        if parsed:
            tap.chunk(parsed)
        return parsed

    stream._parse_event = parse_event
    stream._event_generator = tapped(raw, tap, feed=False)
    hook_close(stream, tap)
    return True


def _converse(p: Profiler, spec: CallSpec, model: Any, t0: float, result: Any) -> Any:
    record(p, spec, model, t0, result, None, CallDetails(retry_count=retries(result)))
    return result


def _invoke(p: Profiler, spec: CallSpec, model: Any, t0: float, result: Any) -> Any:
    headers = result.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    details = CallDetails(
        usage=header_usage(headers),
        processing_time=extract_processing_time(result),
        retry_count=retries(result),
    )
    record(p, spec, model, t0, result, None, details)
    return result


def _streamed(key: str, reader: Callable[[CallDetails, Any], None]) -> Done:
    def done(p: Profiler, spec: CallSpec, model: Any, t0: float, result: Any) -> Any:
        details = CallDetails(retry_count=retries(result))
        stream = result.get(key) if isinstance(result, dict) else None
        if stream is None or not tap_event_stream(stream, Tap(p, spec, model, t0, reader, details)):
            unprofiled_stream(p, spec, model, t0, details)
        return result

    return done


#: The operations that answer with a stream: a failed call of one is a failed streamed call.
STREAMED: Final = frozenset({"converse_stream", "invoke_model_with_response_stream"})

OPERATIONS: Final[dict[str, Done]] = {
    "converse": _converse,
    "converse_stream": _streamed("stream", read_converse_event),
    "invoke_model": _invoke,
    "invoke_model_with_response_stream": _streamed("body", read_invoke_chunk),
}


def _profiled(bare: Any, p: Profiler, spec: CallSpec, done: Done, streaming: bool) -> Any:
    @functools.wraps(bare)
    def call(*args: Any, **kwargs: Any) -> Any:
        if p.disabled:
            return bare(*args, **kwargs)
        model = kwargs.get("modelId")
        t0 = perf()
        try:
            result = bare(*args, **kwargs)
        except BaseException as exc:
            details = failure(exc, retries(getattr(exc, "response", None)), streaming)
            record(p, spec, model, t0, None, exc, details)
            raise
        return done(p, spec, model, t0, result)

    return call


def is_bedrock_runtime(client: Any) -> bool:
    """True for a botocore client of the ``bedrock-runtime`` service."""
    service = getattr(
        getattr(getattr(client, "meta", None), "service_model", None), "service_name", None
    )
    return service == "bedrock-runtime"


def instrument(client: Any, profiler: Profiler, spec: CallSpec) -> list[str]:
    """Profile the client's call methods in place; return the names of those profiled."""
    return [
        name
        for name, done in OPERATIONS.items()
        if patch(
            client,
            name,
            functools.partial(
                _profiled, p=profiler, spec=spec, done=done, streaming=name in STREAMED
            ),
        )
    ]
