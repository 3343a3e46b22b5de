"""LiteLLM integration: a ``CustomLogger`` callback, so ``litellm.completion``/``acompletion``
and the Router are profiled without wrapping anything.

LiteLLM reports each call to its callbacks after the fact, with start and end times, the
provider, the model, the response (usage included, for streams too) and the exception. The
event's backend is the provider LiteLLM routed to (``openai``, ``anthropic``, ``bedrock``...)
and carries the tag ``via=litellm``. Importing this module imports ``litellm``.
"""

from __future__ import annotations

import time
from typing import Any, Final

from litellm.integrations.custom_logger import CustomLogger

from llmtap.producers.integrations.errors import error_type
from llmtap.producers.profiler import Profiler, default_profiler, make_spec
from llmtap.producers.recorder import CallDetails, CallSpec, finished

_PROCESSING_HEADERS: Final = (
    "llm_provider-openai-processing-ms",
    "llm_provider-x-amzn-bedrock-invocation-latency",
)
_MAX_SPECS: Final = 256


def processing_time(payload: dict[str, Any]) -> float | None:
    """Return the backend's processing time from the response headers LiteLLM kept."""
    hidden = payload.get("hidden_params") or {}
    headers = hidden.get("additional_headers") or {}
    for name in _PROCESSING_HEADERS:
        value = headers.get(name)
        if value is not None:
            try:
                return max(float(value), 0.0) / 1000.0
            except (TypeError, ValueError):
                return None
    return None


class LlmtapLogger(CustomLogger):
    """Records every LiteLLM call as an llmtap call.

    ``options`` are those of :func:`llmtap.profile` (session, tenant, tags; ``backend`` fixes
    the backend instead of taking LiteLLM's provider).
    """

    def __init__(self, profiler: Profiler | None = None, **options: Any) -> None:
        super().__init__()
        self._profiler = profiler
        self._options = options
        self._options["tags"] = {"via": "litellm", **(options.get("tags") or {})}
        self._specs: dict[str, CallSpec] = {}

    @property
    def profiler(self) -> Profiler:
        """The profiler calls go to (the process-wide one unless one was given)."""
        return self._profiler or default_profiler()

    def spec(self, provider: str) -> CallSpec:
        """Return the spec of calls routed to ``provider`` (cached per provider)."""
        spec = self._specs.get(provider)
        if spec is None:
            spec = make_spec(**{"backend": provider, **self._options})
            if len(self._specs) < _MAX_SPECS:
                self._specs[provider] = spec
        return spec

    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """LiteLLM's sync success hook."""
        self.record(kwargs, response_obj, None)

    def log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """LiteLLM's sync failure hook."""
        self.record(kwargs, None, _exception(kwargs))

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """LiteLLM's async success hook."""
        self.record(kwargs, response_obj, None)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """LiteLLM's async failure hook."""
        self.record(kwargs, None, _exception(kwargs))

    def record(self, kwargs: dict[str, Any], response: Any, exc: BaseException | None) -> None:
        """Submit one call from what LiteLLM reported; never raises into LiteLLM."""
        p = self.profiler
        if p.disabled:
            return
        payload = kwargs.get("standard_logging_object") or {}
        provider = payload.get("custom_llm_provider") or "litellm"
        t0, t1, ttft = _times(payload)
        details = CallDetails(
            model=model_name(payload.get("model") or kwargs.get("model"), provider),
            processing_time=processing_time(payload),
            # A failed call's logging object may not say it was streamed; its kwargs do.
            streaming=bool(payload.get("stream")) or kwargs.get("stream") is True,
            error_type=error_type(exc) if exc is not None else None,
        )
        p.submit(finished(self.spec(provider), None, t0, t1, response, exc, ttft, details))


def model_name(model: Any, provider: str) -> str | None:
    """Return the model as its provider names it (the Router reports ``provider/model``)."""
    if not isinstance(model, str) or not model:
        return None
    return model.removeprefix(f"{provider}/")


def _exception(kwargs: dict[str, Any]) -> BaseException:
    exc = kwargs.get("exception")
    return exc if isinstance(exc, BaseException) else RuntimeError("litellm call failed")


def _seconds(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else default


def _times(payload: dict[str, Any]) -> tuple[float, float, float | None]:
    """Convert LiteLLM's wall-clock start, end and first-chunk times to perf_counter ones."""
    now_perf, now_wall = time.perf_counter(), time.time()
    start = _seconds(payload.get("startTime"), now_wall)
    end = max(_seconds(payload.get("endTime"), now_wall), start)
    t0 = now_perf - (now_wall - start)
    ttft = None
    first = payload.get("completionStartTime")
    if payload.get("stream") and isinstance(first, int | float) and start <= first <= end:
        ttft = first - start
    return t0, t0 + (end - start), ttft


# LiteLLM copies entries of ``litellm.callbacks`` into these lists on its first call.
_CALLBACK_LISTS: Final = ("callbacks", "input_callback", "success_callback", "failure_callback",
                          "_async_success_callback", "_async_failure_callback")  # fmt: skip


def installed() -> list[LlmtapLogger]:
    """Return the :class:`LlmtapLogger` instances registered in any LiteLLM callback list."""
    import litellm

    found: list[LlmtapLogger] = []
    for name in _CALLBACK_LISTS:
        for callback in getattr(litellm, name, None) or ():
            if isinstance(callback, LlmtapLogger) and callback not in found:
                found.append(callback)
    return found


def install(profiler: Profiler | None = None, **options: Any) -> LlmtapLogger:
    """Register an :class:`LlmtapLogger` in ``litellm.callbacks`` (once) and return it."""
    import litellm

    existing = installed()
    if existing:
        return existing[0]
    logger = LlmtapLogger(profiler, **options)
    litellm.callbacks.append(logger)
    return logger


def uninstall() -> None:
    """Remove every :class:`LlmtapLogger` from all of LiteLLM's callback lists."""
    import litellm

    for name in _CALLBACK_LISTS:
        callbacks = getattr(litellm, name, None)
        if isinstance(callbacks, list):
            callbacks[:] = [c for c in callbacks if not isinstance(c, LlmtapLogger)]


def instrument(client: Any, profiler: Profiler, spec: CallSpec) -> list[str]:
    """``wrap(litellm)`` or ``wrap(router)``: install the callback for every LiteLLM call."""
    options: dict[str, Any] = {"session": spec.session, "tenant": spec.tenant, "tags": spec.tags}
    if spec.backend != "litellm":
        options["backend"] = spec.backend
    install(profiler, **options)
    return ["litellm.callbacks"]
