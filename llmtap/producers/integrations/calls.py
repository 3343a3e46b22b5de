"""Shared machinery of the client integrations: patch a client's methods in place, record
each call, and tap the iterator inside the library's own stream objects.

A patched method returns exactly what the original returns. Streams keep their type: the
integration replaces the iterator a stream object reads from (and hooks its ``close``) so
time to first token, the usage of the last chunks and the end of the stream are seen without
a proxy object.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final

from llmtap.producers.integrations.errors import BREAKER_OPEN, error_type
from llmtap.producers.profiler import Profiler
from llmtap.producers.recorder import CallDetails, CallSpec, finished
from llmtap.producers.usage import Usage

log = logging.getLogger(__name__)

MARK: Final = "__llmtap__"

# Reads one stream chunk into the call's details (usage, processing time, model).
ChunkReader = Callable[[CallDetails, Any], None]

perf = time.perf_counter
_ident = threading.get_ident


def record(
    p: Profiler,
    spec: CallSpec,
    model: Any,
    t0: float,
    result: Any,
    exc: BaseException | None,
    details: CallDetails,
) -> None:
    """Submit one finished, non-streamed call (``model`` is the call's kwargs or a name)."""
    p.submit(finished(spec, model, t0, perf(), result, exc, details=details))


def failure(exc: BaseException, retries: int | None = None, streaming: bool = False) -> CallDetails:
    """Return the details of a failed call: its normalised error type and retries (and the
    breaker state, when an open circuit breaker rejected it).

    ``streaming`` says the call asked for a stream: such a call is a streamed call whether it
    failed before the first chunk or during the stream (one rule for every integration).
    """
    kind = error_type(exc)
    details = CallDetails(error_type=kind, retry_count=retries, streaming=streaming)
    if kind == BREAKER_OPEN:
        details.breaker_state = "open"
        details.breaker_triggered = True
    return details


def absorb(details: CallDetails, found: Usage | None) -> None:
    """Fold a chunk's usage into the details (counts in successive chunks are cumulative)."""
    if found is None:
        return
    if details.usage is None:
        details.usage = found
    else:
        details.usage.absorb(found)


def patch(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> bool:
    """Replace ``owner.name`` by ``make(original)`` on the instance; skip it if already done.

    Returns whether the attribute is now profiled.
    """
    current = getattr(owner, name, None)
    if current is None:
        return False
    if getattr(current, MARK, False):
        return True
    wrapped = make(current)
    setattr(wrapped, MARK, True)
    setattr(owner, name, wrapped)
    return True


def resolve(root: Any, path: str) -> Any:
    """Return ``root.a.b`` for path ``"a.b"``, or None when a step is missing."""
    obj = root
    for step in path.split("."):
        obj = getattr(obj, step, None)
        if obj is None:
            return None
    return obj


def is_async(fn: Callable[..., Any]) -> bool:
    """True for coroutine functions (bound methods and ``functools.wraps`` wrappers too)."""
    return inspect.iscoroutinefunction(inspect.unwrap(fn))


class Tap:
    """One streamed call: stamps the first chunk, reads every chunk with the backend's
    reader, and records the call once, when the stream ends, fails or is closed."""

    __slots__ = ("details", "done", "model", "profiler", "read", "spec", "t0", "ttft")

    def __init__(
        self,
        profiler: Profiler,
        spec: CallSpec,
        model: Any,
        t0: float,
        read: ChunkReader,
        details: CallDetails | None = None,
    ) -> None:
        self.profiler = profiler
        self.spec = spec
        self.model = model
        self.t0 = t0
        self.read = read
        self.details = details or CallDetails()
        self.details.streaming = True
        self.ttft: float | None = None
        self.done = False

    def chunk(self, item: Any) -> None:
        """Take one chunk as it passes to the caller."""
        if self.ttft is None:
            self.ttft = perf() - self.t0
        self.read(self.details, item)

    def finish(self, exc: BaseException | None = None) -> None:
        """Record the call (only the first time)."""
        if self.done:
            return
        self.done = True
        t1 = perf()
        if exc is not None:
            self.details.error_type = error_type(exc)
        self.profiler.submit(
            finished(self.spec, self.model, self.t0, t1, None, exc, self.ttft, self.details)
        )


def tapped(items: Iterator[Any], tap: Tap, feed: bool = True) -> Iterator[Any]:
    """Yield ``items`` unchanged, feeding each to ``tap`` (unless not ``feed``: then only the
    end is recorded); closing this closes ``items``."""
    try:
        for item in items:
            if feed:
                tap.chunk(item)
            yield item
    except GeneratorExit:
        tap.finish(None)
        close = getattr(items, "close", None)
        if close is not None:
            close()
        raise
    except BaseException as exc:
        tap.finish(exc)
        raise
    tap.finish(None)


async def atapped(items: AsyncIterator[Any], tap: Tap) -> AsyncIterator[Any]:
    """Async counterpart of :func:`tapped`."""
    try:
        async for item in items:
            tap.chunk(item)
            yield item
    except GeneratorExit:
        tap.finish(None)
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    except BaseException as exc:
        tap.finish(exc)
        raise
    tap.finish(None)


def tap_stream(stream: Any, tap: Tap, attribute: str = "_iterator") -> bool:
    """Make ``stream`` (the library's own object) feed ``tap``; return False if it cannot.

    The iterator in ``stream.<attribute>`` is replaced by a tapped one, ``close`` is hooked
    so a stream closed early is recorded with what it delivered, and a stream dropped unread
    is recorded when it is collected.
    """
    inner = getattr(stream, attribute, None)
    if inner is None:
        return False
    if hasattr(inner, "__anext__"):
        setattr(stream, attribute, atapped(inner, tap))
    else:
        setattr(stream, attribute, tapped(inner, tap))
    hook_close(stream, tap)
    finalizer = weakref.finalize(stream, tap.finish, None)
    finalizer.atexit = False
    return True


def hook_close(stream: Any, tap: Tap, name: str = "close") -> None:
    """Make ``stream.close()`` (sync or async) record the call before closing.

    The hook holds the stream weakly: a stream must not keep itself alive through it.
    """
    method = getattr(type(stream), name, None)
    if method is None:
        return
    ref = weakref.ref(stream)
    if is_async(method):

        async def aclose(*args: Any, **kwargs: Any) -> Any:
            tap.finish(None)
            target = ref()
            return None if target is None else await method(target, *args, **kwargs)

        setattr(stream, name, aclose)
        return

    def close(*args: Any, **kwargs: Any) -> Any:
        tap.finish(None)
        target = ref()
        return None if target is None else method(target, *args, **kwargs)

    setattr(stream, name, close)


def unprofiled_stream(
    p: Profiler, spec: CallSpec, model: Any, t0: float, details: CallDetails
) -> None:
    """Record a stream this library version does not let us tap, as a call without chunks."""
    log.debug("llmtap: cannot tap this stream type; recording it without TTFT or usage")
    details.streaming = True
    record(p, spec, model, t0, None, None, details)
