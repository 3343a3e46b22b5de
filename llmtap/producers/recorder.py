"""Turns raw call records into exact rollup counters and sampled call events.

The caller's thread only stamps a record (two clock reads and a deque append); this module does
the rest off the hot path: reads usage, prices the call, counts it in the rollup counters and
decides whether it becomes a call event. It does no I/O; randomness and time come in as
arguments, so the sampling rules are testable.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from llmtap.analyzers.pricing import CostCalculator
from llmtap.events import (
    VERSION,
    CallBase,
    CallEvent,
    ProducerStats,
    RollupEvent,
    RollupRow,
    encode_base,
)
from llmtap.producers.usage import (
    Counts,
    Usage,
    extract_model,
    extract_processing_time,
    extract_usage,
    openai_dict_counts,
)
from llmtap.settings import Settings

NANO: float = 1e9


@dataclass(frozen=True, slots=True, eq=False)
class CallSpec:
    """What the caller said about a wrapped function or block; the same for every call.

    Compared and hashed by identity: the recorder keys its cache of encoded bases by spec.
    """

    backend: str = "unknown"
    model: str | None = None
    session: str | None = None
    tenant: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    retry_count: int = 0
    breaker_state: str | None = None
    breaker_triggered: bool = False


@dataclass(slots=True)
class CallDetails:
    """What one call adds at run time (the context manager's ``Call`` fills this)."""

    usage: Usage | None = None
    model: str | None = None
    session: str | None = None
    processing_time: float | None = None
    retry_count: int | None = None
    breaker_state: str | None = None
    breaker_triggered: bool = False
    memory_peak_bytes: int | None = None
    prompt: str | None = None
    streaming: bool = False
    # A normalised error type (``rate_limit``, ``timeout``, ...) that wins over the class name.
    error_type: str | None = None
    # False for a marker that is not a call (a breaker state change): it becomes an event but
    # is left out of the rollup counters and costs nothing.
    counted: bool = True


#: One finished call as the caller's thread stamps it, built by :func:`finished`:
#: (spec, model, t0, t1, result, exc, ttft, details, thread ident). ``model`` holds the wrapped
#: call's keyword arguments (their "model" names the model), a model name, or None. A plain
#: tuple on purpose: a NamedTuple costs the caller's thread 2-3 times a tuple literal.
Record: TypeAlias = tuple[
    CallSpec, Any, float, float, Any, BaseException | None, float | None, CallDetails | None, int
]

_ident = threading.get_ident

#: A kept call in compact form: (its group's encoded base, its row in ``events.ROW_FIELDS``
#: order). The publisher packs rows of the same base into one ``t = "calls"`` group.
CompactCall: TypeAlias = tuple[bytes, tuple[Any, ...]]
MAX_BASES = 4096  # distinct encoded bases kept; past it the cache starts over


def finished(
    spec: CallSpec,
    model: Any,
    t0: float,
    t1: float,
    result: Any = None,
    exc: BaseException | None = None,
    ttft: float | None = None,
    details: CallDetails | None = None,
) -> Record:
    """Return the record of a call that ran from ``t0`` to ``t1`` on the current thread."""
    return (spec, model, t0, t1, result, exc, ttft, details, _ident())


@dataclass(slots=True)
class Measured:
    """A record after reading usage and pricing it: everything the rollup and event need."""

    backend: str
    model: str
    session: str | None
    tenant: str | None
    usage: Usage
    cost: float | None
    processing_time: float | None
    success: bool
    error_type: str | None
    retry_count: int
    breaker_state: str | None
    breaker_triggered: bool
    cost_tracked: bool = True


def _apply_details(m: Measured, details: CallDetails) -> None:
    """Let what the caller reported during the call win over the static spec."""
    m.session = details.session or m.session
    if details.retry_count is not None:
        m.retry_count = details.retry_count
    m.breaker_state = details.breaker_state or m.breaker_state
    m.breaker_triggered = m.breaker_triggered or details.breaker_triggered
    m.processing_time = details.processing_time
    if details.error_type is not None and not m.success:
        m.error_type = details.error_type
    if not details.counted:
        m.cost = 0.0


def _model_arg(value: Any) -> str | None:
    if type(value) is dict:
        value = value.get("model")
    return value if isinstance(value, str) and value else None


def _plain_model(spec: CallSpec, model_arg: Any, result: Any) -> str:
    """The model of a call: its arguments', the response's, the spec's, or ``unknown`` (the
    order :meth:`Recorder.measure` uses), with the common shapes read first."""
    model = model_arg.get("model") if type(model_arg) is dict else model_arg
    if type(model) is str and model:
        return model
    model = _model_arg(model_arg)
    if model is not None:
        return model
    found = result.get("model") if type(result) is dict else None
    if type(found) is str and found:
        return found
    return extract_model(result) or spec.model or "unknown"


def _stream_requested(value: Any) -> bool:
    """True when the wrapped call's keyword arguments ask for a stream (``stream=True``): the
    call is a streamed call even when it failed before returning its stream."""
    return type(value) is dict and value.get("stream") is True


_NO_COUNTS: Final = (0, 0, 0, 0, 0)


def _counts(u: Usage) -> Counts:
    return (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
            u.reasoning_tokens)  # fmt: skip


def new_producer_id() -> str:
    """Return host-pid-random, unique per producer process."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Counters:
    """Exact per (backend, model, session, tenant) counters of one rollup window."""

    __slots__ = ("rows", "window_start")

    def __init__(self, window_start: float) -> None:
        self.window_start = window_start
        self.rows: dict[tuple[str, str, str | None, str | None], list[int]] = {}

    def add(self, m: Measured) -> None:
        """Count one call."""
        key = (m.backend, m.model, m.session, m.tenant)
        self.add_counts(key, m.usage, m.success, m.cost, m.cost_tracked)

    def add_counts(
        self,
        key: tuple[str, str, str | None, str | None],
        u: Usage,
        success: bool,
        cost: float | None,
        cost_tracked: bool,
    ) -> None:
        """Count one call of (backend, model, session, tenant) ``key``."""
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0] * 9
        row[0] += 1
        if not success:
            row[1] += 1
        row[2] += u.input_tokens
        row[3] += u.output_tokens
        row[4] += u.cache_read_tokens
        row[5] += u.cache_write_tokens
        row[6] += u.reasoning_tokens
        if cost is not None:
            row[7] += round(cost * NANO)
        elif cost_tracked:
            row[8] += 1

    def add_plain(
        self,
        key: tuple[str, str, str | None, str | None],
        counts: Counts,
        cost: float | None,
        cost_tracked: bool,
    ) -> None:
        """Count one successful call from its token counts (the publisher's hot path)."""
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0] * 9
        input_tokens, output_tokens, cache_read, cache_write, reasoning = counts
        row[0] += 1
        row[2] += input_tokens
        row[3] += output_tokens
        if cache_read:
            row[4] += cache_read
        if cache_write:
            row[5] += cache_write
        if reasoning:
            row[6] += reasoning
        if cost is not None:
            row[7] += round(cost * NANO)
        elif cost_tracked:
            row[8] += 1

    def to_rows(self) -> list[RollupRow]:
        """Return the window's counters as rollup rows."""
        return [
            RollupRow(
                backend=backend, model=model, session=session, tenant=tenant,
                calls=c[0], errors=c[1], input_tokens=c[2], output_tokens=c[3],
                cache_read_tokens=c[4], cache_write_tokens=c[5], reasoning_tokens=c[6],
                cost_nanousd=c[7], unpriced_calls=c[8],
            )
            for (backend, model, session, tenant), c in self.rows.items()
        ]  # fmt: skip


@dataclass(slots=True)
class Stats:
    """A producer's cumulative statistics."""

    total_calls: int = 0
    profiled_calls: int = 0
    dropped_events: int = 0
    unpriced_calls: int = 0
    bad_runtime_settings: int = 0
    # Times the prices file could not be used (pricing then falls back to the catalogue alone).
    # Not on the wire yet: the rollup's statistics (llmtap.events.ProducerStats) lack the field.
    bad_prices_file: int = 0

    def snapshot(self, settings: Settings) -> ProducerStats:
        """Return the statistics as they go on the wire, with the ``settings`` in force."""
        return ProducerStats(
            total_calls=self.total_calls,
            profiled_calls=self.profiled_calls,
            dropped_events=self.dropped_events,
            unpriced_calls=self.unpriced_calls,
            bad_runtime_settings=self.bad_runtime_settings,
            enabled=settings.enabled,
            level=settings.effective_level,
            sampling_rate=settings.sampling_rate,
        )


#: Builds the calculator (reads the prices file, compiles the catalogue), given the statistics
#: in which to count a prices file it could not use.
PricingFactory: TypeAlias = Callable[[Stats], CostCalculator]


class Recorder:
    """Processes records into counters and events. Callers serialise access with ``lock``.

    ``pricing`` is a calculator, or a factory the publisher thread calls once, before the
    first record (:meth:`resolve_pricing`), so the caller's thread never compiles prices.
    """

    def __init__(
        self,
        settings: Settings,
        pricing: CostCalculator | PricingFactory,
        producer_id: str,
        clock_anchor: tuple[float, float],
        random: Callable[[], float],
    ) -> None:
        self.settings = settings  # through the setter, which caches the derived flags
        self.producer_id = producer_id
        self.lock = threading.Lock()
        self.stats = Stats()
        self._pricing_lock = threading.Lock()
        self._factory: PricingFactory | None = None
        self._calculator: CostCalculator | None = None
        if isinstance(pricing, CostCalculator):
            self._calculator = pricing
        else:
            self._factory = pricing
        self.seq = 0
        self._wall0, self._pc0 = clock_anchor
        self._random = random
        self._thread_names: dict[int, str] = {}
        self._id_prefix = uuid.uuid4().hex[:16]  # call ids: this prefix plus a counter
        self._ids = itertools.count(1)
        self.counters = Counters(self.wall(clock_anchor[1]))
        self._bases: dict[tuple[Any, ...], bytes] = {}

    def wall(self, perf: float) -> float:
        """Convert a perf_counter reading to a Unix timestamp."""
        return self._wall0 + (perf - self._pc0)

    @property
    def pricing_ready(self) -> bool:
        """True once the calculator exists (the catalogue is compiled)."""
        return self._calculator is not None

    def resolve_pricing(self) -> CostCalculator:
        """Return the calculator, building it from the factory the first time (once)."""
        calculator = self._calculator
        if calculator is not None:
            return calculator
        with self._pricing_lock:
            if self._calculator is None:
                assert self._factory is not None
                self._calculator = self._factory(self.stats)
            return self._calculator

    @property
    def pricing(self) -> CostCalculator:
        """The calculator (built now if the publisher thread has not built it yet)."""
        return self.resolve_pricing()

    @property
    def settings(self) -> Settings:
        """The settings in force; setting them (runtime overrides) refreshes the cached flags."""
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self._settings = settings
        self._tokens_on = settings.track_tokens and settings.effective_level in (
            "standard",
            "detailed",
        )
        self._cost_on = self._tokens_on and settings.track_costs

    def process(self, record: Record) -> CallEvent | CompactCall | None:
        """Count one record; return its call event if it is kept, else None.

        A plain successful call (no details, no breaker) comes back in compact form.
        """
        spec, model_arg, t0, t1, result, exc, ttft, details, thread = record
        if details is None and exc is None and ttft is None and not spec.breaker_triggered:
            return self._process_plain(spec, model_arg, t0, t1, result, thread)
        measured = self.measure(record)
        if details is None or details.counted:
            self._count(measured)
        reason, rate = self.keep(measured, t1 - t0)
        if reason is None:
            return None
        self.stats.profiled_calls += 1
        return self.build_event(record, measured, reason, rate)

    def _process_plain(
        self, spec: CallSpec, model_arg: Any, t0: float, t1: float, result: Any, thread: int
    ) -> CompactCall | None:
        """The common case of :meth:`process`, without the intermediate objects."""
        model = _plain_model(spec, model_arg, result)
        counts = self._plain_counts(result) if self._tokens_on else _NO_COUNTS
        latency = t1 - t0
        cost_on, backend, calculator = self._cost_on, spec.backend, self._calculator
        cost = None
        if cost_on and calculator is not None:
            cost = calculator.cost(backend, model, *counts, latency)
        stats = self.stats
        stats.total_calls += 1
        if cost is None and cost_on:
            stats.unpriced_calls += 1
        self.counters.add_plain((backend, model, spec.session, spec.tenant), counts, cost, cost_on)
        kept = self._plain_keep(latency, cost)
        if kept is None:
            return None
        stats.profiled_calls += 1
        processing = extract_processing_time(result) if self._settings.track_network else None
        key = (spec, model, thread, *kept, cost is None, _stream_requested(model_arg))
        base = self._bases.get(key) or self._base(key)
        return base, (
            f"{self._id_prefix}{next(self._ids):x}", self._wall0 + (t0 - self._pc0), latency,
            *counts, cost, None, None if processing is None else max(latency - processing, 0.0),
            processing,
        )  # fmt: skip

    def _plain_counts(self, result: Any) -> Counts:
        if type(result) is dict:
            block = result.get("usage")
            if type(block) is dict and "prompt_tokens" in block:
                return openai_dict_counts(block)
        usage = result if isinstance(result, Usage) else extract_usage(result)
        return _NO_COUNTS if usage is None else _counts(usage)

    def _plain_keep(self, latency: float, cost: float | None) -> tuple[str, float] | None:
        """:meth:`keep` for a successful call without a breaker event."""
        s = self._settings
        rate = s.sampling_rate
        if rate <= 0.0:
            return None
        if latency > s.slow_call_s:
            return "slow", 1.0
        if cost is not None and cost > s.expensive_call_usd:
            return "expensive", 1.0
        if rate >= 1.0 or self._random() < rate:
            return "sampled", rate
        return None

    def _base(self, key: tuple[Any, ...]) -> bytes:
        """Encode and cache the shared fields of the plain calls with this key."""
        spec, model, thread, reason, rate, unpriced, streaming = key
        if len(self._bases) >= MAX_BASES:
            self._bases.clear()
        base = self._bases[key] = encode_base(
            CallBase(
                producer_id=self.producer_id, backend=spec.backend, model_name=model,
                success=True, sample_rate=rate, reason=reason, session_id=spec.session,
                tenant=spec.tenant, thread_name=self._thread_name(thread),
                pricing_version="" if unpriced else self._version(),
                retry_count=spec.retry_count, circuit_breaker_state=spec.breaker_state,
                streaming=streaming, tags=spec.tags,
            )
        )  # fmt: skip
        return base

    def _count(self, measured: Measured) -> None:
        stats = self.stats
        stats.total_calls += 1
        if measured.cost is None and measured.cost_tracked:
            stats.unpriced_calls += 1
        self.counters.add(measured)

    def measure(self, record: Record) -> Measured:
        """Read model, usage and cost from a record (processing time waits for the event)."""
        spec, model_arg, t0, t1, result, exc, _ttft, details, _thread = record
        model = _model_arg(model_arg)
        if details is not None:
            model = details.model or model
        model = model or extract_model(result) or spec.model or "unknown"
        usage = self._usage(result, details)
        cost = self._cost(spec.backend, model, usage, t1 - t0) if self._cost_on else None
        m = Measured(
            backend=spec.backend,
            model=model,
            session=spec.session,
            tenant=spec.tenant,
            usage=usage,
            cost=cost,
            processing_time=None,
            success=exc is None,
            error_type=None if exc is None else type(exc).__name__,
            retry_count=spec.retry_count,
            breaker_state=spec.breaker_state,
            breaker_triggered=spec.breaker_triggered,
            cost_tracked=self._cost_on,
        )
        if details is not None:
            _apply_details(m, details)
        return m

    def _usage(self, result: Any, details: CallDetails | None) -> Usage:
        if not self._tokens_on:
            return Usage()
        if details is not None and details.usage is not None:
            return details.usage
        if isinstance(result, Usage):
            return result
        return extract_usage(result) or Usage()

    def _cost(self, backend: str, model: str, usage: Usage, latency: float) -> float | None:
        # Not built yet only on the caller's thread (a full queue before the publisher thread
        # compiled the catalogue): the call is counted, as unpriced, rather than waiting.
        calculator = self._calculator
        if calculator is None:
            return None
        return calculator.cost(
            backend,
            model,
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            usage.reasoning_tokens,
            latency,
        )

    def keep(self, m: Measured, latency: float) -> tuple[str | None, float]:
        """Return (reason, sample_rate) for a kept call, or (None, rate) for a dropped one.

        Tail rules keep errors, breaker events, slow and expensive calls with rate 1; the rest
        are kept with the head rate. Rate 0 keeps nothing.
        """
        s = self.settings
        rate = s.sampling_rate
        if rate <= 0.0:
            return None, rate
        if not m.success:
            return "error", 1.0
        if m.breaker_triggered:
            return "breaker", 1.0
        if latency > s.slow_call_s:
            return "slow", 1.0
        if m.cost is not None and m.cost > s.expensive_call_usd:
            return "expensive", 1.0
        if rate >= 1.0 or self._random() < rate:
            return "sampled", rate
        return None, rate

    def build_event(self, record: Record, m: Measured, reason: str, rate: float) -> CallEvent:
        """Return the call event of a kept record."""
        spec, model_arg, t0, t1, result, _exc, ttft, details, thread = record
        latency = t1 - t0
        start = self.wall(t0)
        processing = None
        if self._settings.track_network:
            processing = m.processing_time or extract_processing_time(result)
        network = max(latency - processing, 0.0) if processing is not None else None
        prompt = details.prompt if details is not None else None
        u = m.usage
        return CallEvent(
            v=VERSION,
            call_id=f"{self._id_prefix}{next(self._ids):x}",
            producer_id=self.producer_id,
            backend=m.backend,
            model_name=m.model,
            start_time=start,
            end_time=start + latency,
            latency=latency,
            success=m.success,
            sample_rate=rate,
            reason=reason,  # type: ignore[arg-type]
            session_id=m.session,
            tenant=m.tenant,
            thread_name=self._thread_name(thread),
            network_latency=network,
            processing_time=processing,
            ttft=ttft,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
            reasoning_tokens=u.reasoning_tokens,
            estimated_cost_usd=m.cost,
            pricing_version=self._version() if m.cost is not None else "",
            error_type=m.error_type,
            retry_count=m.retry_count,
            circuit_breaker_triggered=m.breaker_triggered,
            circuit_breaker_state=m.breaker_state,
            memory_peak_bytes=details.memory_peak_bytes if details is not None else None,
            streaming=ttft is not None
            or bool(details and details.streaming)
            or _stream_requested(model_arg),
            prompt_hash=hashlib.sha256(prompt.encode()).hexdigest()[:16] if prompt else None,
            prompt_chars=len(prompt) if prompt else None,
            tags=spec.tags,
        )

    def _version(self) -> str:
        calculator = self._calculator
        return calculator.version if calculator is not None else ""

    def _thread_name(self, ident: int) -> str:
        name = self._thread_names.get(ident)
        if name is None:
            self._thread_names = {t.ident or 0: t.name for t in threading.enumerate()}
            name = self._thread_names.get(ident, str(ident))
        return name

    def cut_rollup(self, now_perf: float) -> RollupEvent | None:
        """Close the current window and return its rollup (None when nothing happened).

        The sequence number grows by one per returned rollup.
        """
        counters = self.counters
        end = self.wall(now_perf)
        self.counters = Counters(end)
        if not counters.rows and self.seq > 0:
            return None
        self.seq += 1
        return RollupEvent(
            v=VERSION,
            producer_id=self.producer_id,
            seq=self.seq,
            window_start=counters.window_start,
            window_end=max(end, counters.window_start),
            rows=counters.to_rows(),
            stats=self.stats.snapshot(self.settings),
        )
