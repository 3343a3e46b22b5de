"""llmtap: profile LLM calls into Redis Streams and turn them into cost, latency and alerts."""

from llmtap.producers.integrations import litellm_callback, wrap
from llmtap.producers.integrations.breakers import BreakerListener, report_breaker
from llmtap.producers.profiler import (
    Call,
    Profiler,
    ProfilingWrapper,
    configure,
    default_profiler,
    profile,
)
from llmtap.settings import Settings, SettingsError

__version__ = "0.1.0"
__all__ = [
    "BreakerListener",
    "Call",
    "Profiler",
    "ProfilingWrapper",
    "Settings",
    "SettingsError",
    "__version__",
    "configure",
    "default_profiler",
    "litellm_callback",
    "profile",
    "report_breaker",
    "wrap",
]
