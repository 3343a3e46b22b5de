"""Context windows of models, for the insights: the genai-prices catalogue first, then a shipped,
dated table of local (Ollama) models the catalogue does not list; overrides win over both.

A model whose window neither source knows is left out, never guessed from a similar name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from genai_prices import data_snapshot

#: Ollama library models by name (the part before ``:tag``), their context length in tokens as
#: the model cards on ollama.com/library give it. Matched exactly: ``llama3.1:8b`` is
#: ``llama3.1``, never ``llama3``.
OLLAMA_WINDOWS_AS_OF: Final = "2026-12-01"
OLLAMA_WINDOWS: Final = {
    "llama3": 8_192,
    "llama3.1": 131_072,
    "llama3.2": 131_072,
    "llama3.3": 131_072,
    "mistral": 32_768,
    "gemma2": 8_192,
}
_OLLAMA: Final = frozenset({"ollama", "ollama_chat"})
_AZURE: Final = frozenset({"azure", "azure_openai", "azure_ai"})
_AWS: Final = frozenset({"aws", "bedrock", "bedrock_converse"})


def context_windows(
    models: Iterable[tuple[str, str]], overrides: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Return model name -> context window (tokens) for each (backend, model) whose window is
    known: ``overrides`` (by model name) first, then the catalogue, then the Ollama table."""
    out: dict[str, int] = {}
    for backend, model in models:
        window = (overrides or {}).get(model) or context_window(backend, model)
        if window:
            out[model] = window
    return out


def context_window(backend: str, model: str) -> int | None:
    """Return the context window of ``model`` on ``backend``, None when no source knows it."""
    name, ref = backend.strip().lower(), model.strip().lower()
    if name in _OLLAMA:
        return OLLAMA_WINDOWS.get(ref.split(":", 1)[0])
    if name == "litellm" and "/" in ref:
        prefix, rest = ref.split("/", 1)
        return context_window(prefix, rest) if prefix != "litellm" else None
    snapshot = data_snapshot.get_snapshot()
    for provider, candidate in _candidates(name, ref):
        try:
            _, info = snapshot.find_provider_model(candidate, None, provider, None)
        except LookupError:
            continue
        return info.context_window or None
    return None


def _candidates(backend: str, ref: str) -> Iterator[tuple[str | None, str]]:
    if backend in _AZURE:
        yield from (("azure", ref), ("openai", ref))
    elif backend in _AWS:
        yield "aws", ref
    elif backend in ("openai", "anthropic"):
        yield backend, ref
    else:
        yield from ((backend or None, ref), (None, ref))
