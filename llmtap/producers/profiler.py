"""The profiling wrapper: decorators, context managers and wrapped callables and streams.

The caller's thread does as little as it can: two clock reads and one deque append per call.
Reading usage, pricing, counting and sampling happen on the publisher thread
(:mod:`llmtap.producers.recorder`), and so does the start-up: reading the prices file,
compiling the catalogue and connecting to Redis (the first call only starts the thread).
Nothing here raises into the wrapped call: exceptions of the call itself pass through unchanged.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import random
import threading
import time
import tracemalloc
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, Final, TypeVar, cast, overload

from llmtap.analyzers.pricing import CostCalculator
from llmtap.embedded import default_redis_url
from llmtap.producers.prices import pricing_or_catalogue
from llmtap.producers.publisher import Publisher, connect
from llmtap.producers.recorder import (
    CallDetails,
    CallSpec,
    Record,
    Recorder,
    Stats,
    finished,
    new_producer_id,
)
from llmtap.producers.usage import Usage, extract_usage
from llmtap.settings import Settings

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_perf = time.perf_counter
_ident = threading.get_ident


class Profiler:
    """One producer: settings, pricing, the record queue and its publisher thread.

    Build it, ``start()`` it (the first profiled call does so too), and ``close()`` it (done at
    interpreter exit). ``redis_url`` defaults to the settings' URL, then to a running
    ``llmtap up``'s server, then to a local Redis.
    A prices file that cannot be used is logged once and counted (``bad_prices_file`` in
    :meth:`stats`); calls are then priced from the catalogue alone.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        redis_url: str | None = None,
        pricing: CostCalculator | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        # None: resolved on the publisher thread (a running `llmtap up`, else the default).
        self.redis_url = redis_url or self.settings.redis_url
        self._pricing = pricing
        self.producer_id = self.settings.producer_id or new_producer_id()
        self._publisher: Publisher | None = None
        self._records: deque[Record] | None = None
        self._closed: Publisher | None = None
        self._start_lock = threading.Lock()
        self._apply(self.settings)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, *, warm: bool = False) -> Profiler:
        """Start the publisher thread (idempotent). Returns self.

        The thread reads the prices file, compiles the catalogue and connects to Redis, so
        starting costs the caller only the thread's start. With ``warm``, this call also waits
        until the catalogue is compiled (the connection stays the thread's: an unreachable
        Redis never delays the caller).
        """
        with self._start_lock:
            publisher = self._publisher
            if publisher is None:
                publisher = self._start_publisher()
        if warm:
            publisher.recorder.resolve_pricing()
        return self

    def _start_publisher(self) -> Publisher:
        pricing = self._pricing or self._load_pricing
        recorder = Recorder(
            self.settings, pricing, self.producer_id, (time.time(), _perf()), random.random
        )
        configured = self.redis_url
        publisher = Publisher(
            recorder,
            self.settings,
            lambda: connect(configured or default_redis_url()),
            self._apply,
            configured or DEFAULT_REDIS_URL,
        )
        publisher.start()
        self._publisher = publisher
        self._records = publisher.records
        atexit.register(self.close)
        return publisher

    def _load_pricing(self, stats: Stats) -> CostCalculator:
        """Build the calculator; a bad prices file is logged, counted and left out."""
        calculator, error = pricing_or_catalogue(self.settings)
        if error is not None:
            stats.bad_prices_file += 1
            log.warning("llmtap: %s; pricing from the catalogue without overrides", error)
        return calculator

    def close(self, timeout: float | None = None) -> None:
        """Flush queued events and the last rollup, waiting at most ``timeout`` seconds."""
        publisher, self._publisher = self._publisher, None
        self._records = None
        if publisher is not None:
            self._closed = publisher
            publisher.close(self.settings.exit_flush_s if timeout is None else timeout)
            atexit.unregister(self.close)

    @property
    def publisher(self) -> Publisher:
        """The running publisher (starting it if needed)."""
        return self._publisher or self.start()._publisher  # type: ignore[return-value]

    def _apply(self, settings: Settings) -> None:
        """Take new settings (from start-up or the runtime-settings key)."""
        self.active_settings = settings
        level = settings.effective_level
        self.disabled = level == "disabled"
        self._queue_cap = settings.queue_size
        self.trace_memory = level == "detailed" or (settings.track_memory and not self.disabled)
        if self._publisher is not None:
            self._publisher.recorder.settings = settings

    # -- the hot path ------------------------------------------------------------------------

    def submit(self, record: Record) -> None:
        """Queue a call record; on a full queue, count it on this thread instead."""
        records = self._records
        if records is None:
            self.start()
            records = self._records
            assert records is not None
        if len(records) < self._queue_cap:
            records.append(record)
        else:
            self.publisher.overflow(record)

    def stats(self) -> dict[str, int]:
        """Return this producer's statistics so far (total, profiled, dropped, ...)."""
        publisher = self._publisher or self._closed or self.publisher
        with publisher.recorder.lock:
            s = publisher.recorder.stats
            return {
                "total_calls": s.total_calls + len(publisher.records),
                "profiled_calls": s.profiled_calls,
                "dropped_events": s.dropped_events,
                "unpriced_calls": s.unpriced_calls,
                "bad_runtime_settings": s.bad_runtime_settings,
                "bad_prices_file": s.bad_prices_file,
                "published_events": publisher.published_events,
            }

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued record is processed and written; return True if it was.

        Cuts a rollup too, so the stream holds exact totals for every call made so far.
        """
        publisher = self.publisher
        deadline = _perf() + timeout
        while publisher.records and _perf() < deadline:
            time.sleep(0.001)
        publisher.request_rollup()
        while _perf() < deadline:
            if publisher.idle():
                return True
            time.sleep(0.002)
        return False

    # -- public wrappers -----------------------------------------------------------------------

    @overload
    def profile(self, fn: F, **options: Any) -> F: ...

    @overload
    def profile(self, fn: None = None, **options: Any) -> Call: ...

    def profile(self, fn: F | None = None, **options: Any) -> F | Call:
        """Decorate a function or open a profiled block. See :func:`llmtap.profile`."""
        spec = make_spec(**options)
        if fn is not None:
            return ProfilingWrapper(fn, profiler=self, spec=spec)
        return Call(self, spec)

    def wrap(self, fn: F, **options: Any) -> F:
        """Return ``fn`` profiled (sync, async, generators and returned streams alike)."""
        return ProfilingWrapper(fn, profiler=self, spec=make_spec(**options))


def make_spec(
    *,
    backend: str = "unknown",
    model: str | None = None,
    session: str | None = None,
    tenant: str | None = None,
    tags: dict[str, str] | None = None,
    retry_count: int = 0,
    breaker_state: str | None = None,
    circuit_breaker_triggered: bool = False,
) -> CallSpec:
    """Return the static description of profiled calls; unknown options raise TypeError."""
    return CallSpec(
        backend=backend,
        model=model,
        session=session,
        tenant=tenant,
        tags={str(k): str(v) for k, v in (tags or {}).items()},
        retry_count=retry_count,
        breaker_state=breaker_state,
        breaker_triggered=circuit_breaker_triggered,
    )


def _memory_start() -> None:
    if not tracemalloc.is_tracing():
        tracemalloc.start()
    tracemalloc.reset_peak()


def _memory_peak() -> int:
    return tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0


def ProfilingWrapper(
    fn: F,
    *,
    profiler: Profiler | None = None,
    spec: CallSpec | None = None,
    **options: Any,
) -> F:
    """Return ``fn`` profiled: it is called unchanged and each call is recorded.

    Sync and async functions, generator functions and functions that return a stream (an
    iterator or async iterator) are all handled; streams are wrapped so time to first token
    and the usage in the last chunks are recorded when the stream ends. The result is a plain
    function (``functools.wraps``), so it binds as a method like ``fn`` does.
    """
    p = profiler or default_profiler()
    spec = spec or make_spec(**options)
    if inspect.iscoroutinefunction(fn):
        return cast(F, _async_wrapper(fn, p, spec))
    gen = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
    return cast(F, _sync_wrapper(fn, p, spec, gen))


def _sync_wrapper(
    fn: Callable[..., Any], p: Profiler, spec: CallSpec, gen: bool
) -> Callable[..., Any]:
    perf, ident, submit, detailed = _perf, _ident, p.submit, _call_detailed

    @functools.wraps(fn)
    def profiled(*args: Any, **kwargs: Any) -> Any:
        if p.disabled:
            return fn(*args, **kwargs)
        if p.trace_memory:
            return detailed(fn, p, spec, gen, args, kwargs)
        t0 = perf()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            submit(finished(spec, kwargs, t0, perf(), None, exc))
            raise
        if gen or (type(result) not in _PLAIN and _is_stream(result)):
            return wrap_stream(result, p, spec, kwargs.get("model"), t0)
        # finished() and Profiler.submit, inlined: this is the hot path.
        record: Record = (spec, kwargs, t0, perf(), result, None, None, None, ident())
        records = p._records
        if records is not None and len(records) < p._queue_cap:
            records.append(record)
        else:
            submit(record)
        return result

    return profiled


def _async_wrapper(fn: Callable[..., Any], p: Profiler, spec: CallSpec) -> Callable[..., Any]:
    perf, submit = _perf, p.submit

    @functools.wraps(fn)
    async def profiled(*args: Any, **kwargs: Any) -> Any:
        if p.disabled:
            return await fn(*args, **kwargs)
        t0 = perf()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            submit(finished(spec, kwargs, t0, perf(), None, exc))
            raise
        if type(result) not in _PLAIN and _is_stream(result):
            return wrap_stream(result, p, spec, kwargs.get("model"), t0)
        submit(finished(spec, kwargs, t0, perf(), result))
        return result

    return profiled


def _call_detailed(
    fn: Callable[..., Any],
    p: Profiler,
    spec: CallSpec,
    gen: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """The ``detailed`` level: also records peak traced memory during the call."""
    details = CallDetails()
    _memory_start()
    t0 = _perf()
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        t1 = _perf()
        details.memory_peak_bytes = _memory_peak()
        p.submit(finished(spec, kwargs, t0, t1, None, exc, details=details))
        raise
    t1 = _perf()
    details.memory_peak_bytes = _memory_peak()
    if gen or _is_stream(result):
        return wrap_stream(result, p, spec, kwargs.get("model"), t0)
    p.submit(finished(spec, kwargs, t0, t1, result, details=details))
    return result


_PLAIN: Final = frozenset({dict, list, tuple, str, bytes, int, float, bool, type(None)})
_stream_types: dict[type, bool] = {}


def _is_stream(result: Any) -> bool:
    """True for iterators and async iterators (a streamed response), cached per type."""
    kind = type(result)
    known = _stream_types.get(kind)
    if known is None:
        known = kind not in _PLAIN and isinstance(result, Iterator | AsyncIterator)
        if len(_stream_types) < 1024:
            _stream_types[kind] = known
    return known


def wrap_stream(
    stream: Any, profiler: Profiler, spec: CallSpec, model: str | None, t0: float
) -> Any:
    """Return a proxy of ``stream`` that records the call when the stream ends."""
    if isinstance(stream, AsyncIterator):
        return AsyncStreamProxy(stream, profiler, spec, model, t0)
    return StreamProxy(stream, profiler, spec, model, t0)


class _StreamState:
    __slots__ = ("details", "done", "model", "profiler", "spec", "stream", "t0", "ttft", "usage")

    def __init__(
        self, stream: Any, profiler: Profiler, spec: CallSpec, model: str | None, t0: float
    ) -> None:
        self.stream = stream
        self.profiler = profiler
        self.spec = spec
        self.model = model
        self.t0 = t0
        self.ttft: float | None = None
        self.usage = Usage()
        self.done = False

    def chunk(self, item: Any) -> None:
        if self.ttft is None:
            self.ttft = _perf() - self.t0
        found = extract_usage(item)
        if found is not None:
            self.usage.absorb(found)
        if self.model is None:
            model = getattr(item, "model", None)
            if isinstance(model, str):
                self.model = model

    def finish(self, exc: BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        details = CallDetails(usage=self.usage, streaming=True)
        self.profiler.submit(
            finished(self.spec, self.model, self.t0, _perf(), None, exc, self.ttft, details)
        )


class StreamProxy:
    """Iterates the wrapped stream unchanged; other attributes pass through to it."""

    def __init__(self, stream: Any, *args: Any) -> None:
        self._state = _StreamState(stream, *args)

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        state = self._state
        try:
            item = next(state.stream)
        except StopIteration:
            state.finish(None)
            raise
        except BaseException as exc:
            state.finish(exc)
            raise
        state.chunk(item)
        return item

    def __enter__(self) -> StreamProxy:
        enter = getattr(self._state.stream, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        self._state.finish(exc_info[1])
        exit_ = getattr(self._state.stream, "__exit__", None)
        return exit_(*exc_info) if exit_ is not None else None

    def close(self) -> None:
        """Close the stream; a stream closed early is recorded with what it delivered."""
        self._state.finish(None)
        close = getattr(self._state.stream, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state.stream, name)


class AsyncStreamProxy:
    """Async counterpart of :class:`StreamProxy`."""

    def __init__(self, stream: Any, *args: Any) -> None:
        self._state = _StreamState(stream, *args)

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        state = self._state
        try:
            item = await state.stream.__anext__()
        except StopAsyncIteration:
            state.finish(None)
            raise
        except BaseException as exc:
            state.finish(exc)
            raise
        state.chunk(item)
        return item

    async def __aenter__(self) -> AsyncStreamProxy:
        enter = getattr(self._state.stream, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        self._state.finish(exc_info[1])
        exit_ = getattr(self._state.stream, "__aexit__", None)
        return (await exit_(*exc_info)) if exit_ is not None else None

    async def aclose(self) -> None:
        """Close the stream; a stream closed early is recorded with what it delivered."""
        self._state.finish(None)
        close = getattr(self._state.stream, "aclose", None)
        if close is not None:
            await close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state.stream, name)


_default_lock = threading.Lock()
_default: list[Profiler] = []


def default_profiler() -> Profiler:
    """Return the process-wide profiler, built from the environment on first use."""
    with _default_lock:
        if not _default:
            _default.append(Profiler())
        return _default[0]


def configure(
    settings: Settings | None = None, *, redis_url: str | None = None, start: bool = False
) -> Profiler:
    """Replace the process-wide profiler (closing the old one) and return the new one.

    With ``start``, the new profiler is started now and its catalogue compiled before this
    returns (see :meth:`Profiler.start`), instead of on the first profiled call's behalf.
    """
    with _default_lock:
        for old in _default:
            old.close()
        _default[:] = [Profiler(settings, redis_url=redis_url)]
        profiler = _default[0]
    return profiler.start(warm=True) if start else profiler


@overload
def profile(fn: F, **options: Any) -> F: ...


@overload
def profile(fn: None = None, **options: Any) -> Call: ...


def profile(fn: F | None = None, **options: Any) -> F | Call:
    """Profile calls with the process-wide profiler.

    As a decorator (``@profile`` or ``@profile(backend="openai", model="gpt-4o")``) on sync or
    async functions and generators; as a context manager (``with profile(...) as call:`` or
    ``async with``). Options: backend, model, session, tenant, tags, retry_count,
    breaker_state, circuit_breaker_triggered.
    """
    return default_profiler().profile(fn, **options)


class Call:
    """A profiled block, used as ``with``/``async with`` or as a decorator.

    Inside the block, report what the wrapper cannot see::

        with llmtap.profile(backend="openai", model="gpt-4o", session="s1") as call:
            response = client.chat.completions.create(...)
            call.record_response(response)      # or call.set_usage(input_tokens=..., ...)
    """

    def __init__(self, profiler: Profiler, spec: CallSpec) -> None:
        self._profiler = profiler
        self._spec = spec
        self.details = CallDetails()
        self._response: Any = None
        self._t0 = 0.0
        self._ttft: float | None = None

    # -- reporting from inside the block ----------------------------------------------------

    def record_response(self, response: Any) -> None:
        """Read tokens, model and processing time from the LLM response later."""
        self._response = response

    def set_usage(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> None:
        """Report token counts (input includes cached tokens, output includes reasoning)."""
        self.details.usage = Usage(
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens
        )

    def set_model(self, model: str) -> None:
        """Report the model the call used."""
        self.details.model = model

    def set_processing_time(self, seconds: float) -> None:
        """Report the backend's own processing time; the rest of the latency is network."""
        self.details.processing_time = seconds

    def set_retry_count(self, retries: int) -> None:
        """Report how many retries the call needed."""
        self.details.retry_count = retries

    def set_breaker(self, state: str, triggered: bool = True) -> None:
        """Report a circuit-breaker state change or rejection during the call."""
        self.details.breaker_state = state
        self.details.breaker_triggered = triggered

    def set_prompt(self, prompt: str) -> None:
        """Give the prompt: only its hash and length leave the process, never the text."""
        self.details.prompt = prompt

    def first_token(self) -> None:
        """Mark the arrival of the first streamed token (time to first token)."""
        if self._ttft is None:
            self._ttft = _perf() - self._t0

    # -- context manager and decorator ------------------------------------------------------

    def __enter__(self) -> Call:
        if self._profiler.trace_memory and not self._profiler.disabled:
            _memory_start()
        self._t0 = _perf()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        t1 = _perf()
        p = self._profiler
        if p.disabled:
            return
        if p.trace_memory:
            self.details.memory_peak_bytes = _memory_peak()
        p.submit(
            finished(self._spec, None, self._t0, t1, self._response, exc, self._ttft, self.details)
        )

    async def __aenter__(self) -> Call:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        return ProfilingWrapper(fn, profiler=self._profiler, spec=self._spec)
