"""Circuit breakers as events: a listener for pybreaker and aiobreaker breakers, and
:func:`report_breaker` for any other breaker.

A state change becomes an event with ``circuit_breaker_triggered`` and the new
``circuit_breaker_state``, kept by the sampler whatever the rate; it is not a call, so it adds
nothing to the rollup counters. A call an open breaker rejects is a failed call
(``error_type = "breaker_open"``) and counts like one. No breaker library is imported here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from llmtap.producers.integrations.errors import BREAKER_OPEN, error_type
from llmtap.producers.profiler import Profiler, default_profiler, make_spec
from llmtap.producers.recorder import CallDetails, CallSpec, finished

T = TypeVar("T")


class BreakerOpen(Exception):
    """Stands for the error of a call an open breaker rejected (reported without one)."""


def state_name(state: Any) -> str:
    """Return a breaker state as ``closed``, ``open`` or ``half-open`` (pybreaker states,
    aiobreaker states and enums, and plain strings alike)."""
    inner = getattr(state, "state", None)  # aiobreaker's state objects wrap an enum
    name = getattr(inner if inner is not None else state, "name", None)
    if not isinstance(name, str):
        name = str(state)
    return name.lower().replace("_", "-")


def record_breaker(
    profiler: Profiler, spec: CallSpec, state: str, rejected: bool, exc: BaseException | None
) -> None:
    """Submit a breaker event: a state change, or a rejected call when ``rejected``."""
    if profiler.disabled:
        return
    details = CallDetails(breaker_state=state, breaker_triggered=True, counted=rejected)
    if rejected:
        details.error_type = BREAKER_OPEN
        exc = exc or BreakerOpen(f"{spec.backend} circuit breaker is {state}")
    now = time.perf_counter()
    exc = exc if rejected else None
    profiler.submit(finished(spec, spec.model, now, now, None, exc, details=details))


def report_breaker(
    backend: str,
    state: str,
    model: str | None = None,
    *,
    rejected: bool = False,
    profiler: Profiler | None = None,
    **options: Any,
) -> None:
    """Report a circuit-breaker state change, or (``rejected=True``) a call it rejected.

    ``state`` is the breaker's state now (``open``, ``half-open``, ``closed``); ``options``
    are those of :func:`llmtap.profile` (session, tenant, tags). Never raises.
    """
    spec = make_spec(backend=backend, model=model, **options)
    record_breaker(profiler or default_profiler(), spec, state_name(state), rejected, None)


def _is_rejection(exc: BaseException) -> bool:
    """A breaker error raised without running the call (not the one a tripping call raises,
    which is chained to the call's own error)."""
    return error_type(exc) == BREAKER_OPEN and exc.__cause__ is None and exc.__context__ is None


class BreakerListener:
    """A circuit-breaker listener for pybreaker and aiobreaker (same method names).

    ``breaker.add_listener(BreakerListener("openai", "gpt-4o"))`` turns every state change
    into an event. Breakers do not tell listeners about the calls they reject, so call through
    :meth:`call` (or :meth:`call_async`) to record those too.
    """

    def __init__(
        self,
        backend: str,
        model: str | None = None,
        *,
        profiler: Profiler | None = None,
        **options: Any,
    ) -> None:
        self.spec = make_spec(backend=backend, model=model, **options)
        self._profiler = profiler

    @property
    def profiler(self) -> Profiler:
        """The profiler events go to (the process-wide one unless one was given)."""
        return self._profiler or default_profiler()

    def before_call(self, breaker: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        """Nothing to do before a call: the call itself is profiled by its client wrapper."""

    def success(self, breaker: Any) -> None:
        """Nothing to do on success."""

    def failure(self, breaker: Any, exc: BaseException) -> None:
        """Nothing to do on failure: the failed call is recorded by its client wrapper, and a
        trip shows up as a state change."""

    def state_change(self, breaker: Any, old: Any, new: Any) -> None:
        """Record the new state as a breaker event."""
        record_breaker(self.profiler, self.spec, state_name(new), False, None)

    def rejected(self, exc: BaseException | None = None) -> None:
        """Record a call the open breaker rejected."""
        record_breaker(self.profiler, self.spec, "open", True, exc)

    def call(self, breaker: Any, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Return ``breaker.call(func, ...)``, recording a rejection before re-raising it."""
        try:
            return breaker.call(func, *args, **kwargs)  # type: ignore[no-any-return]
        except Exception as exc:
            if _is_rejection(exc):
                self.rejected(exc)
            raise

    async def call_async(
        self, breaker: Any, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """Async counterpart of :meth:`call` (aiobreaker's ``call_async``)."""
        try:
            return await breaker.call_async(func, *args, **kwargs)  # type: ignore[no-any-return]
        except Exception as exc:
            if _is_rejection(exc):
                self.rejected(exc)
            raise
