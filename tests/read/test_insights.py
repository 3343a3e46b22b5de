"""Optimization insights from the call details: failed-call spend and repeated prompts."""

from __future__ import annotations

from collections import Counter

import pytest
import redis

from llmtap import events, keys
from llmtap.read import tools
from tests.consumer_helpers import burst
from tests.factories import call_event
from tests.read.truth import DAY0, NOW, Truth


def test_insights_report_money_spent_on_failed_calls(r: redis.Redis, truth: Truth) -> None:
    """The reliability insight of a model states the weighted cost of its failed calls."""
    got = tools.get_optimization_insights(r, 24, now=NOW)
    failed: Counter[str] = Counter()
    for c in truth.calls:
        if not c.success:
            failed[c.model_name] += (c.estimated_cost_usd or 0.0) / c.sample_rate
    reliability = {
        item["evidence"]["model"]: item["estimated_saving_usd"]
        for item in got["recommendations"]
        if item["category"] == "reliability"
    }
    assert reliability == pytest.approx({m: v for m, v in failed.items() if v})
    for item in got["recommendations"]:
        assert {"priority", "category", "recommendation", "potential_improvement",
                "evidence"} <= set(item)  # fmt: skip


def test_repeated_prompts_give_a_caching_insight(r: redis.Redis, redis_url: str) -> None:
    """Five calls of one prompt hash at $0.01 each can save four of them with a cache."""
    calls = [
        call_event(call_id=f"c{i}", start_time=DAY0 + i, end_time=DAY0 + i + 1,
                   estimated_cost_usd=0.01, prompt_hash="h1")
        for i in range(5)
    ]  # fmt: skip
    r.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch(calls)})
    burst(redis_url, ["sessions"])
    got = tools.get_optimization_insights(r, 24, now=DAY0 + 3600)
    (caching,) = [i for i in got["recommendations"] if i["category"] == "caching"]
    assert caching["estimated_saving_usd"] == pytest.approx(0.04)
    assert caching["evidence"]["top"] == [{"prompt_hash": "h1", "calls": 5.0}]


def _prompts(r: redis.Redis, redis_url: str, sizes: dict[tuple[str, str], int]) -> None:
    """One call event per (backend, model) with the given prompt size, drained by sessions."""
    calls = [
        call_event(call_id=f"c{i}", backend=backend, model_name=model, input_tokens=tokens,
                   start_time=DAY0 + i, end_time=DAY0 + i + 1)
        for i, ((backend, model), tokens) in enumerate(sizes.items())
    ]  # fmt: skip
    r.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch(calls)})
    burst(redis_url, ["sessions", "latency"])


def _flagged(got: dict[str, object]) -> dict[str, int]:
    items = got["recommendations"]
    assert isinstance(items, list)
    return {
        i["evidence"]["model"]: i["evidence"]["context_window"]
        for i in items
        if i["category"] == "context_optimization"
    }


def test_context_windows_come_from_the_catalogue_and_unknown_ones_are_skipped(
    r: redis.Redis, redis_url: str
) -> None:
    """gpt-4o's 128k window comes from the pricing catalogue; llama3.1:8b (128k in the shipped
    Ollama table) is not "194% of 8192"; a model no source knows is skipped."""
    _prompts(r, redis_url, {("openai", "gpt-4o"): 124_000, ("ollama", "llama3.1:8b"): 15_900,
                            ("openai", "my-private-finetune"): 900_000})  # fmt: skip
    got = tools.get_optimization_insights(r, 24, now=DAY0 + 3600)
    assert _flagged(got) == {"gpt-4o": 128_000}


def test_context_window_overrides_win(r: redis.Redis, redis_url: str) -> None:
    """A window passed in overrides the catalogue and the shipped table."""
    _prompts(r, redis_url, {("ollama", "llama3.1:8b"): 15_900})
    got = tools.get_optimization_insights(
        r, 24, now=DAY0 + 3600, context_windows={"llama3.1:8b": 16_384}
    )
    assert _flagged(got) == {"llama3.1:8b": 16_384}
