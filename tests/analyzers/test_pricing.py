"""Tests for llmtap.analyzers.pricing: rates against genai-prices, resolution, overrides.

Reading the override file is tested with its loader, in tests/producers/test_prices.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import DataSnapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtap.analyzers.pricing import CostCalculator, parse_overrides

#: A fixed instant (inside deepseek's peak window) so time-dependent prices are reproducible.
AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

# (llmtap backend, model string, genai-prices provider_id for calc_price)
MODELS = [
    ("openai", "gpt-4o", "openai"),
    ("openai", "gpt-4o-mini", "openai"),
    ("openai", "gpt-4.1", "openai"),
    ("openai", "gpt-4.1-nano", "openai"),
    ("openai", "gpt-5", "openai"),
    ("openai", "gpt-5-mini", "openai"),
    ("openai", "o3-mini", "openai"),
    ("openai", "gpt-3.5-turbo", "openai"),
    ("openai", "gpt-5.4", "openai"),  # tiered at 272k input tokens
    ("azure", "gpt-4o", "azure"),
    ("azure_openai", "o4-mini", "azure"),
    ("anthropic", "claude-3-5-haiku-20241022", "anthropic"),
    ("anthropic", "claude-3-7-sonnet-latest", "anthropic"),
    ("anthropic", "claude-opus-4-1", "anthropic"),
    ("anthropic", "claude-haiku-4-5", "anthropic"),
    ("anthropic", "claude-sonnet-4-5", "anthropic"),  # tiered at 200k
    ("anthropic", "claude-opus-4-6", "anthropic"),  # tiered at 200k
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "aws"),
    ("bedrock", "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "aws"),
    ("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws"),
    ("aws", "meta.llama3-70b-instruct-v1:0", "aws"),
    ("aws", "us.meta.llama3-1-70b-instruct-v1:0", "aws"),
    ("bedrock", "amazon.nova-pro-v1:0", "aws"),
    ("bedrock", "mistral.mistral-large-2402-v1:0", "aws"),
    ("bedrock", "deepseek.r1-v1:0", "aws"),
    ("google", "gemini-2.5-pro", "google"),  # tiered at 200k
    ("google", "gemini-2.5-flash", "google"),
    ("google", "gemini-1.5-pro", "google"),  # tiered at 128k
    ("google", "gemini-2.0-flash", "google"),
    ("mistral", "mistral-large-latest", "mistral"),
    ("mistral", "mistral-small-latest", "mistral"),
    ("mistral", "codestral-2508", "mistral"),
    ("groq", "llama-3.1-8b-instant", "groq"),
    ("groq", "llama-3.3-70b-versatile", "groq"),
    ("deepseek", "deepseek-chat", "deepseek"),
    ("deepseek", "deepseek-reasoner", "deepseek"),
    ("x-ai", "grok-3", "x-ai"),
    ("x-ai", "grok-3-mini", "x-ai"),
    ("cohere", "command-r-plus", "cohere"),
    ("cohere", "command-r", "cohere"),
    ("perplexity", "sonar", "perplexity"),  # per-request fee
    ("perplexity", "sonar-deep-research", "perplexity"),  # separate reasoning rate
    ("openrouter", "qwen/qwen3-coder-flash", "openrouter"),  # two tiers: 32k and 128k
    ("litellm", "openai/gpt-4o", "litellm"),
    ("litellm", "anthropic/claude-3-5-haiku-20241022", "litellm"),
    ("litellm", "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", "litellm"),
    ("litellm", "gemini/gemini-2.5-pro", "litellm"),
]

# (input, output, cache_read, cache_write, reasoning): valid OpenAI-style counts.
MIXES = {
    "plain": (1_000, 500, 0, 0, 0),
    "cache_read_and_reasoning": (40_000, 1_500, 30_000, 0, 600),
    "cache_write": (150_000, 2_000, 20_000, 60_000, 0),
    "above_200k": (250_000, 3_000, 100_000, 50_000, 1_000),
    "above_272k": (300_000, 4_000, 0, 0, 4_000),
    "nothing": (0, 0, 0, 0, 0),
}


def reference(
    model: str, provider_id: str, mix: tuple[int, int, int, int, int], at: datetime = AT
) -> float:
    """genai-prices' own price for a mix, as a float."""
    i, o, cr, cw, r = mix
    usage = Usage(
        input_tokens=i,
        output_tokens=o,
        cache_read_tokens=cr,
        cache_write_tokens=cw,
        output_reasoning_tokens=r,
    )
    result = calc_price(usage, model, provider_id=provider_id, genai_request_timestamp=at)
    return float(result.total_price)


@pytest.fixture(scope="module")
def calc() -> CostCalculator:
    """A catalogue-only calculator pinned to AT."""
    return CostCalculator(at=AT)


@pytest.mark.parametrize("mix", MIXES.values(), ids=MIXES.keys())
@pytest.mark.parametrize(("backend", "model", "provider_id"), MODELS)
def test_cost_equals_calc_price(
    calc: CostCalculator,
    backend: str,
    model: str,
    provider_id: str,
    mix: tuple[int, int, int, int, int],
) -> None:
    """The compiled rates give calc_price's total to 1e-12 relative."""
    expected = reference(model, provider_id, mix)
    assert calc.cost(backend, model, *mix) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_sample_spans_providers() -> None:
    """The comparison table covers at least 30 models from many providers."""
    assert len(MODELS) >= 30
    assert {"openai", "anthropic", "aws", "google", "mistral"} <= {p for _, _, p in MODELS}


@pytest.mark.parametrize(
    ("backend", "model", "threshold"),
    [
        ("anthropic", "claude-sonnet-4-5", 200_000),
        ("google", "gemini-1.5-pro", 128_000),
        ("openai", "gpt-5.4", 272_000),
        ("openrouter", "qwen/qwen3-coder-flash", 32_000),
        ("openrouter", "qwen/qwen3-coder-flash", 128_000),
    ],
)
@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_tier_is_chosen_from_input_tokens(
    calc: CostCalculator, backend: str, model: str, threshold: int, offset: int
) -> None:
    """A tier applies to inputs strictly above its threshold, exactly as in genai-prices."""
    mix = (threshold + offset, 1_000, 0, 0, 0)
    expected = reference(model, backend, mix)
    assert calc.cost(backend, model, *mix) == pytest.approx(expected, rel=1e-12)


def test_tier_raises_the_rate(calc: CostCalculator) -> None:
    """Crossing a context tier charges every input token at the higher rate."""
    below = calc.cost("anthropic", "claude-sonnet-4-5", input_tokens=200_000)
    above = calc.cost("anthropic", "claude-sonnet-4-5", input_tokens=200_001)
    assert below == pytest.approx(0.6)
    assert above == pytest.approx(200_001 * 6 / 1e6)


@pytest.mark.parametrize(
    ("model", "same_as"),
    [
        (
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (
            "eu.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        ("apac.anthropic.claude-opus-4-8-v1:0", "anthropic.claude-opus-4-8-v1:0"),
        ("us.meta.llama3-1-70b-instruct-v1:0", "meta.llama3-1-70b-instruct-v1:0"),
        ("us.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0"),
        ("amazon.titan-text-express-v1:0:8k", "amazon.titan-text-express-v1"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
    ],
)
def test_bedrock_ids_resolve(calc: CostCalculator, model: str, same_as: str) -> None:
    """Bedrock region prefixes, ARNs and version suffixes resolve to the base model's price."""
    assert calc.is_known("bedrock", model)
    assert calc.cost("bedrock", model, 10_000, 1_000) == calc.cost("aws", same_as, 10_000, 1_000)


@pytest.mark.parametrize(
    ("model", "backend", "same_as"),
    [
        ("openai/gpt-4o", "openai", "gpt-4o"),
        ("anthropic/claude-3-5-haiku-20241022", "anthropic", "claude-3-5-haiku-20241022"),
        (
            "bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "bedrock",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        ("azure/gpt-4o", "azure", "gpt-4o"),
        ("vertex_ai/gemini-2.5-pro", "google", "gemini-2.5-pro"),
        ("mistral/mistral-large-latest", "mistral", "mistral-large-latest"),
        ("groq/llama-3.1-8b-instant", "groq", "llama-3.1-8b-instant"),
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
    ],
)
def test_litellm_strings_resolve(
    calc: CostCalculator, model: str, backend: str, same_as: str
) -> None:
    """LiteLLM "provider/model" strings are priced like the provider's own model."""
    assert calc.is_known("litellm", model)
    expected = calc.cost(backend, same_as, 5_000, 700, 1_000)
    assert expected is not None
    assert calc.cost("litellm", model, 5_000, 700, 1_000) == expected


@pytest.mark.parametrize(
    ("per_hour", "backend", "model", "duration_s", "expected"),
    [
        (0.0, "ollama", "llama3", 120.0, 0.0),
        (0.0, "ollama", "llama3", None, 0.0),
        (1.5, "ollama", "llama3", 3600.0, 1.5),
        (3.0, "ollama", "qwen2.5:7b", 1800.0, 1.5),
        (2.0, "ollama", "llama3", None, 0.0),
        (2.0, "litellm", "ollama/llama3", 900.0, 0.5),
        (2.0, "litellm", "ollama_chat/mistral", 900.0, 0.5),
    ],
)
def test_ollama_is_free_or_priced_by_the_hour(
    per_hour: float, backend: str, model: str, duration_s: float | None, expected: float
) -> None:
    """Local models cost 0 per token, or duration times the configured hourly rate."""
    calc = CostCalculator(ollama_usd_per_hour=per_hour, at=AT)
    assert calc.is_known(backend, model)
    assert calc.cost(backend, model, 10_000, 2_000, duration_s=duration_s) == pytest.approx(
        expected
    )


@pytest.mark.parametrize(
    ("backend", "model"),
    [
        ("openai", "no-such-model"),
        ("anthropic", ""),
        ("", ""),
        ("mycorp", "custom-model"),
        ("bedrock", "anthropic.claude-v2"),
        ("litellm", "nosuchprovider/nosuchmodel"),
        ("openai", "whisper-1"),  # priced per audio hour only
        ("groq", "whisper-large-v3"),
    ],
)
def test_unknown_model_is_none(calc: CostCalculator, backend: str, model: str) -> None:
    """An unknown model gives None, never a silent 0.0, and is_known is False."""
    assert calc.cost(backend, model, 1_000, 100) is None
    assert not calc.is_known(backend, model)


@pytest.mark.parametrize(
    ("backend", "model"),
    [("mistral", "mistral-nemo:free"), ("azure", "phi-4-reasoning:free"), ("google", "gemma-3")],
)
def test_free_catalogue_model_costs_zero(calc: CostCalculator, backend: str, model: str) -> None:
    """A catalogue model listed without prices is known and free."""
    assert calc.is_known(backend, model)
    assert calc.cost(backend, model, 1_000, 100) == 0.0


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # gpt-4o: input 2.5, cache read 1.25, output 10 USD per million tokens.
        ((1_000, 0, 0, 0, 0), 0.0025),
        ((1_000, 0, 1_000, 0, 0), 0.00125),
        ((500, 0, 1_000, 0, 0), 0.00125),  # Anthropic-style input: uncached clamps at 0
        ((0, 1_000, 0, 0, 2_000), 0.01),  # reasoning above output clamps to output
        ((-5, -5, 0, 0, 0), 0.0),  # negative counts never give a negative cost
    ],
)
def test_counts_are_clamped(
    calc: CostCalculator, counts: tuple[int, int, int, int, int], expected: float
) -> None:
    """Inconsistent counts are clamped rather than producing negative charges."""
    assert calc.cost("openai", "gpt-4o", *counts) == pytest.approx(expected)


BACKENDS = sorted({backend for backend, _, _ in MODELS} | {"ollama", "bedrock", "vllm"})
COUNT = st.integers(min_value=-(2**70), max_value=2**1100)


@settings(max_examples=300, deadline=None)
@given(
    backend=st.one_of(st.sampled_from(BACKENDS), st.text(max_size=20)),
    model=st.one_of(st.sampled_from([model for _, model, _ in MODELS]), st.text(max_size=60)),
    counts=st.tuples(COUNT, COUNT, COUNT, COUNT, COUNT),
    duration=st.one_of(st.none(), st.floats(allow_nan=True)),
)
def test_cost_never_raises(
    backend: str, model: str, counts: tuple[int, int, int, int, int], duration: float | None
) -> None:
    """Any strings and integers give a non-negative float or None, never an exception."""
    calc = CostCalculator(ollama_usd_per_hour=1.0, at=AT)
    i, o, cr, cw, r = counts
    result = calc.cost(backend, model, i, o, cr, cw, r, duration_s=duration)
    assert result is None or result >= 0.0


@pytest.mark.parametrize(
    ("backend", "model"),
    [("openai", "gpt-4o"), ("perplexity", "sonar"), ("openai", "no-such-model")],
)
def test_lookups_are_compiled_once(
    monkeypatch: pytest.MonkeyPatch, backend: str, model: str
) -> None:
    """Repeated lookups, known or unknown, hit the cache and return the same value."""
    calls = []
    original = DataSnapshot.find_provider_model

    def counting(self: DataSnapshot, *args: Any) -> Any:
        calls.append(args)
        return original(self, *args)

    monkeypatch.setattr(DataSnapshot, "find_provider_model", counting)
    calc = CostCalculator(at=AT)
    first = calc.cost(backend, model, 1_234, 567, 200)
    compiled = len(calls)
    assert compiled >= 1
    assert all(calc.cost(backend, model, 1_234, 567, 200) == first for _ in range(100))
    assert calc.rates(backend, model) is calc.rates(backend, model)
    assert len(calls) == compiled


@pytest.mark.parametrize(
    ("model", "instants"),
    [
        # Peak window 00:30-16:30 UTC, off-peak discount outside it.
        ("deepseek-chat", [AT, datetime(2026, 11, 27, 20, 0, tzinfo=UTC)]),
        # New prices from 2026-08-17 and 2026-09-10.
        (
            "deepseek-v4-flash",
            [datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 9, 1, tzinfo=UTC), AT],
        ),
    ],
)
def test_time_dependent_prices_use_the_compile_instant(
    model: str, instants: list[datetime]
) -> None:
    """A time-dependent price is the one current at `at`, as calc_price gives at that instant."""
    mix = MIXES["cache_read_and_reasoning"]
    costs = [CostCalculator(at=at).cost("deepseek", model, *mix) for at in instants]
    expected = [reference(model, "deepseek", mix, at) for at in instants]
    assert costs == pytest.approx(expected, rel=1e-12)
    assert len(set(expected)) == len(instants)


OVERRIDES = {
    "openai/gpt-4o": {
        "input_per_mtok": 2.0,
        "output_per_mtok": 8.0,
        "cache_read_per_mtok": 1.0,
        "cache_write_per_mtok": 2.5,
    },
    "ollama/llama3": {"per_hour": 1.5},
    "mycorp/custom-model": {"input_per_mtok": 1, "output_per_mtok": 3},
    "Bedrock/Meta.Llama3-70B-Instruct-v1:0": {"input_per_mtok": 0.5, "output_per_mtok": 0.5},
}


@pytest.mark.parametrize(
    ("backend", "model", "counts", "duration_s", "expected"),
    [
        ("openai", "gpt-4o", (10_000, 1_000, 4_000, 2_000, 0), None, 0.025),
        ("litellm", "openai/gpt-4o", (10_000, 1_000, 4_000, 2_000, 0), None, 0.025),
        ("OpenAI", "GPT-4o", (1_000_000, 0, 0, 0, 0), None, 2.0),
        ("ollama", "llama3", (10_000, 1_000, 0, 0, 0), 7200.0, 3.0),
        ("ollama", "llama3:latest", (10_000, 1_000, 0, 0, 0), 3600.0, 1.5),
        ("ollama", "mistral", (10_000, 1_000, 0, 0, 0), 3600.0, 0.0),
        ("mycorp", "custom-model", (1_000_000, 1_000_000, 500_000, 0, 0), None, 4.0),
        ("aws", "meta.llama3-70b-instruct-v1:0", (1_000_000, 1_000_000, 0, 0, 0), None, 1.0),
    ],
)
def test_overrides_win(
    backend: str,
    model: str,
    counts: tuple[int, int, int, int, int],
    duration_s: float | None,
    expected: float,
) -> None:
    """Override rates replace the catalogue's; unset cache rates default to the input rate."""
    overrides = parse_overrides("prices.json", json.dumps(OVERRIDES).encode())
    calc = CostCalculator(overrides, at=AT)
    assert calc.cost(backend, model, *counts, duration_s=duration_s) == pytest.approx(expected)


@pytest.mark.parametrize("per_hour", [-1.0, float("nan"), float("inf")])
def test_bad_ollama_rate_is_rejected(per_hour: float) -> None:
    """A negative or non-finite hourly rate for Ollama is refused at construction."""
    with pytest.raises(ValueError, match="ollama_usd_per_hour"):
        CostCalculator(ollama_usd_per_hour=per_hour, at=AT)
