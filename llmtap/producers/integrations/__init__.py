"""Client integrations: ``wrap(client)`` profiles an existing LLM client in place.

Recognised clients: OpenAI and AsyncOpenAI (Azure ones too), Anthropic and AsyncAnthropic,
boto3 ``bedrock-runtime`` clients, and ollama's Client and AsyncClient. The client is
recognised by its class names, so no client library is imported until one is wrapped. LiteLLM
is profiled through its callbacks instead (:mod:`llmtap.producers.integrations.litellm`).
"""

from __future__ import annotations

import importlib
import types
from typing import Any, Final, TypeVar

from llmtap.producers.profiler import Profiler, default_profiler, make_spec

C = TypeVar("C")

# (top-level package, class name) found in a client's MRO -> (integration module, backend)
_CLIENTS: Final = {
    ("openai", "AzureOpenAI"): ("openai", "azure"),
    ("openai", "AsyncAzureOpenAI"): ("openai", "azure"),
    ("openai", "OpenAI"): ("openai", "openai"),
    ("openai", "AsyncOpenAI"): ("openai", "openai"),
    ("anthropic", "Anthropic"): ("anthropic", "anthropic"),
    ("anthropic", "AsyncAnthropic"): ("anthropic", "anthropic"),
    ("ollama", "Client"): ("ollama", "ollama"),
    ("ollama", "AsyncClient"): ("ollama", "ollama"),
    ("litellm", "Router"): ("litellm", "litellm"),
}


def detect(client: Any) -> tuple[str, str] | None:
    """Return (integration module, default backend) for a client, or None if unknown."""
    for cls in type(client).__mro__:
        found = _CLIENTS.get((cls.__module__.partition(".")[0], cls.__name__))
        if found is not None:
            return found
    if isinstance(client, types.ModuleType) and client.__name__ == "litellm":
        return "litellm", "litellm"
    service_model = getattr(getattr(client, "meta", None), "service_model", None)
    if getattr(service_model, "service_name", None) == "bedrock-runtime":
        return "bedrock", "bedrock"
    return None


def wrap(client: C, *, profiler: Profiler | None = None, **options: Any) -> C:
    """Profile every call ``client`` makes and return the same client object.

    ``options`` are those of :func:`llmtap.profile` (backend, model, session, tenant, tags);
    ``backend`` defaults to the client's (``azure`` for Azure OpenAI clients). Wrapping twice
    is harmless. Raises ``TypeError`` for a client no integration knows.
    """
    found = detect(client)
    if found is None:
        raise TypeError(
            f"llmtap.wrap does not know {type(client).__module__}.{type(client).__qualname__}; "
            "supported: OpenAI, AsyncOpenAI, Azure OpenAI, Anthropic, AsyncAnthropic, "
            "boto3 bedrock-runtime, ollama Client/AsyncClient, the litellm module or Router"
        )
    module_name, backend = found
    options.setdefault("backend", backend)
    module = importlib.import_module(f"{__name__}.{module_name}")
    module.instrument(client, profiler or default_profiler(), make_spec(**options))
    return client


def litellm_callback(profiler: Profiler | None = None, **options: Any) -> Any:
    """Register llmtap's LiteLLM callback in ``litellm.callbacks`` (once) and return it.

    Every ``litellm.completion``/``acompletion`` call and every Router call is then profiled.
    Imports ``litellm``; ``options`` are those of :func:`wrap`.
    """
    from llmtap.producers.integrations.litellm import install

    return install(profiler, **options)
