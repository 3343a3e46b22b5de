"""OpenAI integration: ``OpenAI``, ``AsyncOpenAI`` and the Azure OpenAI clients.

Profiles ``chat.completions.create`` and ``.parse``, ``responses.create`` and ``.parse``, and
``embeddings.create``.
Processing time comes from the ``openai-processing-ms`` header; streamed usage from the final
chunk (chat completions need ``stream_options={"include_usage": True}`` for it) or from the
``response.completed`` event (Responses API). The ``openai`` package is never imported here.
"""

from __future__ import annotations

from typing import Any, Final

from llmtap.producers.integrations.calls import absorb, resolve
from llmtap.producers.integrations.stainless import Method, profile_copies, profile_create
from llmtap.producers.profiler import Profiler
from llmtap.producers.recorder import CallDetails, CallSpec
from llmtap.producers.usage import extract_usage

PROCESSING_HEADER: Final = "openai-processing-ms"
RESOURCES: Final = ("chat.completions", "responses", "embeddings")


def read_chunk(details: CallDetails, chunk: Any) -> None:
    """Take the usage of a chat-completion chunk or of a Responses ``response.completed``."""
    if getattr(chunk, "usage", None) is not None or (
        getattr(chunk, "type", None) == "response.completed"
    ):
        absorb(details, extract_usage(chunk))


def is_azure(client: Any) -> bool:
    """True for ``AzureOpenAI`` and ``AsyncAzureOpenAI`` (and their subclasses)."""
    return any(cls.__name__ in ("AzureOpenAI", "AsyncAzureOpenAI") for cls in type(client).__mro__)


def instrument(client: Any, profiler: Profiler, spec: CallSpec) -> list[str]:
    """Profile the client's call methods in place; return the names of those profiled."""
    profile_copies(client, lambda new: instrument(new, profiler, spec))
    method = Method(profiler, spec, read_chunk, PROCESSING_HEADER)
    done = []
    for path in RESOURCES:
        resource = resolve(client, path)
        for name in ("create", "parse"):  # parse: structured outputs, same wire and usage
            if resource is not None and profile_create(resource, method, name):
                done.append(f"{path}.{name}")
    return done
