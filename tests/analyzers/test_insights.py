"""Optimization insights: each rule on small hand-made inputs with a known saving."""

from __future__ import annotations

import pytest

from llmtap.analyzers import insights as ins


def usage(model: str, cost: float, calls: int = 100, errors: int = 1, tokens_in: int = 100_000,
          tokens_out: int = 10_000, backend: str = "openai") -> ins.ModelUsage:  # fmt: skip
    """Usage of one model."""
    return ins.ModelUsage(backend, model, calls, errors, cost, tokens_in, tokens_out)


@pytest.mark.parametrize(
    ("model", "family"),
    [("gpt-4o", "gpt"), ("gpt-4o-mini", "gpt"), ("anthropic.claude-3-haiku", "claude"),
     ("mistral/mistral-large", "mistral"), ("llama3:8b", "llama")],
)  # fmt: skip
def test_family(model: str, family: str) -> None:
    """The family is the first word of the model's own name."""
    assert ins.family(model) == family


def test_a_cheaper_sibling_with_equal_quality_is_recommended() -> None:
    """gpt-4o at 10x gpt-4o-mini's price per token: moving saves 90% of its cost."""
    inputs = ins.InsightInputs(
        usage=[usage("gpt-4o", 11.0), usage("gpt-4o-mini", 1.1)],
        latency=[ins.ModelLatency("openai", "gpt-4o", 2.0, 1.0, 100),
                 ins.ModelLatency("openai", "gpt-4o-mini", 1.5, 0.8, 100)],
    )  # fmt: skip
    (item,) = ins.cheaper_models(inputs)
    assert item["evidence"]["alternative"] == "gpt-4o-mini"
    assert item["estimated_saving_usd"] == pytest.approx(9.9)
    assert item["priority"] == "high"


@pytest.mark.parametrize(
    "other",
    [
        usage("gpt-4o-mini", 1.1, errors=10),  # less reliable
        usage("gpt-4o-mini", 1.1, tokens_in=10_000, calls=100),  # much smaller prompts
        usage("claude-haiku", 1.1),  # another family
    ],
)
def test_no_recommendation_without_a_comparable_sibling(other: ins.ModelUsage) -> None:
    """A cheaper model that fails more, sees other prompt sizes or is another family is no
    alternative."""
    assert ins.cheaper_models(ins.InsightInputs(usage=[usage("gpt-4o", 11.0), other])) == []


def test_slower_sibling_is_no_alternative() -> None:
    """A cheaper sibling whose p95 is 1.2 times higher or more is not recommended."""
    inputs = ins.InsightInputs(
        usage=[usage("gpt-4o", 11.0), usage("gpt-4o-mini", 1.1)],
        latency=[ins.ModelLatency("openai", "gpt-4o", 2.0, 1.0, 100),
                 ins.ModelLatency("openai", "gpt-4o-mini", 3.0, 2.0, 100)],
    )  # fmt: skip
    assert ins.cheaper_models(inputs) == []


def test_near_context_window() -> None:
    """A 120k-token prompt on a 128k model is flagged high; 50k is not."""
    inputs = ins.InsightInputs(
        usage=[],
        details=[ins.ModelDetails("gpt-4o", max_input_tokens=124_000),
                 ins.ModelDetails("gpt-4o-mini", max_input_tokens=50_000)],
        context_windows={"gpt-4o": 128_000, "gpt-4o-mini": 128_000},
    )  # fmt: skip
    (item,) = ins.near_context_window(inputs)
    assert item["evidence"] == {"model": "gpt-4o", "max_input_tokens": 124_000,
                                "context_window": 128_000}  # fmt: skip
    assert item["priority"] == "high"


def test_a_model_without_a_known_window_is_skipped_not_guessed() -> None:
    """Only the windows passed in count: no name-prefix table stands in for a missing one."""
    inputs = ins.InsightInputs(
        usage=[],
        details=[ins.ModelDetails("llama3.1:8b", max_input_tokens=15_900),
                 ins.ModelDetails("llama3:8b", max_input_tokens=15_900)],
        context_windows={"llama3.1:8b": 131_072},
    )  # fmt: skip
    assert ins.near_context_window(inputs) == []


def test_slow_backend_saving_in_seconds() -> None:
    """A backend at 3 s mean against 1 s, over 50 calls, could save 100 s."""
    inputs = ins.InsightInputs(
        usage=[],
        latency=[ins.ModelLatency("openai", "gpt-4o", 2.0, 1.0, 100),
                 ins.ModelLatency("bedrock", "claude", 5.0, 3.0, 50)],
    )  # fmt: skip
    (item,) = ins.slow_backends(inputs)
    assert item["evidence"]["backend"] == "bedrock"
    assert item["estimated_saving_s"] == pytest.approx(100.0)


def test_output_ratio_outlier() -> None:
    """A model writing 10x the median output per input token is flagged."""
    models = [usage("a", 1, tokens_out=10_000), usage("b", 1, tokens_out=12_000),
              usage("c", 1, tokens_out=120_000)]  # fmt: skip
    (item,) = ins.output_ratio_outliers(ins.InsightInputs(usage=models))
    assert item["evidence"]["model"] == "c"


def test_recommend_orders_by_priority_then_saving() -> None:
    """High priority first; within a priority the larger saving first."""
    inputs = ins.InsightInputs(
        usage=[usage("gpt-4o", 11.0), usage("gpt-4o-mini", 1.1)],
        details=[ins.ModelDetails("gpt-4o", failed_cost_w=0.5, retries_w=3)],
        prompts=[ins.PromptStats("h", 4, 4.0, 0.4)],
    )
    got = ins.recommend(inputs)
    assert [i["category"] for i in got] == ["model_selection", "reliability", "caching"]
    assert got[2]["estimated_saving_usd"] == pytest.approx(0.3)
