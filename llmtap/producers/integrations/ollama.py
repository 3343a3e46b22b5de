"""Ollama integration: ``ollama.Client`` and ``ollama.AsyncClient``.

Profiles ``chat`` and ``generate``, streamed or not. Tokens are Ollama's ``prompt_eval_count``
and ``eval_count``; processing time is its ``total_duration`` (the rest of the latency is
network and client time). A streamed call returns a generator as the bare call does; the
profiled one yields the same items and closes the library's generator when closed. The
``ollama`` package is never imported here.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from llmtap.producers.integrations.calls import (
    Tap,
    absorb,
    atapped,
    failure,
    is_async,
    patch,
    perf,
    record,
    tapped,
)
from llmtap.producers.profiler import Profiler
from llmtap.producers.recorder import CallDetails, CallSpec
from llmtap.producers.usage import extract_processing_time, extract_usage, field

METHODS: Final = ("chat", "generate")


def read_chunk(details: CallDetails, chunk: Any) -> None:
    """Take counts and durations from the last (``done``) chunk of a stream."""
    if field(chunk, "done") is True:  # objects (ollama >= 0.4) and plain dicts alike
        absorb(details, extract_usage(chunk))
        details.processing_time = extract_processing_time(chunk)


def _model(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return kwargs.get("model") or (args[0] if args else None)


def _sync(bare: Any, p: Profiler, spec: CallSpec) -> Any:
    @functools.wraps(bare)
    def call(*args: Any, **kwargs: Any) -> Any:
        if p.disabled:
            return bare(*args, **kwargs)
        model = _model(args, kwargs)
        t0 = perf()
        streaming = kwargs.get("stream") is True
        try:
            result = bare(*args, **kwargs)
        except BaseException as exc:
            record(p, spec, model, t0, None, exc, failure(exc, streaming=streaming))
            raise
        if streaming:
            return tapped(result, Tap(p, spec, model, t0, read_chunk))
        record(p, spec, model, t0, result, None, CallDetails())
        return result

    return call


def _async(bare: Any, p: Profiler, spec: CallSpec) -> Any:
    @functools.wraps(bare)
    async def call(*args: Any, **kwargs: Any) -> Any:
        if p.disabled:
            return await bare(*args, **kwargs)
        model = _model(args, kwargs)
        t0 = perf()
        streaming = kwargs.get("stream") is True
        try:
            result = await bare(*args, **kwargs)
        except BaseException as exc:
            record(p, spec, model, t0, None, exc, failure(exc, streaming=streaming))
            raise
        if streaming:
            return atapped(result, Tap(p, spec, model, t0, read_chunk))
        record(p, spec, model, t0, result, None, CallDetails())
        return result

    return call


def instrument(client: Any, profiler: Profiler, spec: CallSpec) -> list[str]:
    """Profile the client's call methods in place; return the names of those profiled."""
    done = []
    for name in METHODS:
        method = getattr(client, name, None)
        if method is None:
            continue
        make = _async if is_async(method) else _sync
        if patch(client, name, functools.partial(make, p=profiler, spec=spec)):
            done.append(name)
    return done
