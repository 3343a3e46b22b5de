"""llmtap: profile LLM calls into Redis Streams and turn them into cost, latency and alerts."""

__version__ = "0.1.0"
__all__ = ["Call", "Profiler", "ProfilingWrapper", "__version__", "profile"]
