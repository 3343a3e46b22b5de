"""Anthropic integration: ``Anthropic`` and ``AsyncAnthropic``.

Profiles ``messages.create`` (streamed or not) and ``messages.stream``. Usage comes from the
message, or for streams from ``message_start`` and ``message_delta`` events, with cache reads
and writes as Anthropic reports them. Anthropic reports no server processing time, so network
time is left unknown. The ``anthropic`` package is never imported here.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from llmtap.producers.integrations.calls import (
    Tap,
    absorb,
    failure,
    patch,
    perf,
    record,
    tap_stream,
    unprofiled_stream,
)
from llmtap.producers.integrations.stainless import (
    Method,
    error_retries,
    profile_copies,
    profile_create,
    stream_retries,
)
from llmtap.producers.profiler import Profiler
from llmtap.producers.recorder import CallDetails, CallSpec
from llmtap.producers.usage import extract_usage

_USAGE_EVENTS: Final = frozenset({"message_start", "message_delta"})
# MessageStreamManager keeps the request it makes on entry in a name-mangled attribute.
_REQUEST_ATTRS: Final = (
    "_MessageStreamManager__api_request",
    "_AsyncMessageStreamManager__api_request",
)


def read_event(details: CallDetails, event: Any) -> None:
    """Take the usage of ``message_start`` and ``message_delta`` events."""
    if getattr(event, "type", None) in _USAGE_EVENTS:
        absorb(details, extract_usage(event))


def instrument(client: Any, profiler: Profiler, spec: CallSpec) -> list[str]:
    """Profile the client's call methods in place; return the names of those profiled."""
    profile_copies(client, lambda new: instrument(new, profiler, spec))
    messages = getattr(client, "messages", None)
    if messages is None:
        return []
    done = []
    if profile_create(messages, Method(profiler, spec, read_event, None)):
        done.append("messages.create")
    if patch(messages, "stream", lambda bare: _stream(bare, profiler, spec)):
        done.append("messages.stream")
    return done


def _stream(bare: Any, p: Profiler, spec: CallSpec) -> Any:
    @functools.wraps(bare)
    def stream(*args: Any, **kwargs: Any) -> Any:
        manager = bare(*args, **kwargs)
        if not p.disabled:
            _hook_manager(manager, p, spec, kwargs)
        return manager

    return stream


def _hook_manager(manager: Any, p: Profiler, spec: CallSpec, kwargs: dict[str, Any]) -> None:
    """Make the manager's request (made on ``with`` entry) return a tapped raw stream."""
    for attr in _REQUEST_ATTRS:
        request = getattr(manager, attr, None)
        if request is None:
            continue
        if callable(request):
            setattr(manager, attr, functools.partial(_open_sync, request, p, spec, kwargs))
        else:  # the async manager holds an awaitable
            setattr(manager, attr, _open_async(request, p, spec, kwargs))
        return


def _tap(raw: Any, p: Profiler, spec: CallSpec, kwargs: dict[str, Any], t0: float) -> Any:
    details = CallDetails(retry_count=stream_retries(raw))
    if not tap_stream(raw, Tap(p, spec, kwargs, t0, read_event, details)):
        unprofiled_stream(p, spec, kwargs, t0, details)
    return raw


def _open_sync(request: Any, p: Profiler, spec: CallSpec, kwargs: dict[str, Any]) -> Any:
    t0 = perf()
    try:
        raw = request()
    except BaseException as exc:
        record(p, spec, kwargs, t0, None, exc, failure(exc, error_retries(exc), streaming=True))
        raise
    return _tap(raw, p, spec, kwargs, t0)


async def _open_async(request: Any, p: Profiler, spec: CallSpec, kwargs: dict[str, Any]) -> Any:
    t0 = perf()
    try:
        raw = await request
    except BaseException as exc:
        record(p, spec, kwargs, t0, None, exc, failure(exc, error_retries(exc), streaming=True))
        raise
    return _tap(raw, p, spec, kwargs, t0)
