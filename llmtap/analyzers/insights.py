"""Optimization insights with evidence and an estimated saving (pure; inputs are aggregates).

Each rule looks at one kind of waste: a cheaper model of the same family that is as reliable
and as fast on similar prompt sizes; prompts repeated often enough for a cache; prompts near
a model's context window; money spent on failed calls and retries; a slow backend with a
faster alternative; a model whose output/input token ratio stands out. Savings are estimates
("if every such call moved"), given in USD or seconds of latency over the analysed period.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

PRIORITY_ORDER: Final = {"high": 0, "medium": 1, "low": 2}
NEAR_CONTEXT_SHARE: Final = 0.8
MAX_ERROR_RATE_GAP: Final = 0.02
MAX_LATENCY_RATIO: Final = 1.2
SLOW_RATIO: Final = 1.5


@dataclass(frozen=True)
class ModelUsage:
    """Exact usage of one (backend, model) over the period, from the rollups."""

    backend: str
    model: str
    calls: int
    errors: int
    cost_usd: float
    input_tokens: int
    output_tokens: int

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    @property
    def error_rate(self) -> float:
        """Errors per call (0 without calls)."""
        return self.errors / self.calls if self.calls else 0.0

    @property
    def usd_per_token(self) -> float | None:
        """Cost per token, None without tokens."""
        return self.cost_usd / self.tokens if self.tokens else None

    @property
    def avg_input(self) -> float:
        """Mean input tokens per call."""
        return self.input_tokens / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class ModelLatency:
    """Latency of one (backend, model): p95 and mean (seconds), estimated calls."""

    backend: str
    model: str
    p95: float
    mean: float
    weight: float


@dataclass(frozen=True)
class ModelDetails:
    """Weighted call-event details of one model: retries, failed calls' cost, largest prompt."""

    model: str
    weight: float = 0.0
    retries_w: float = 0.0
    failed_w: float = 0.0
    failed_cost_w: float = 0.0
    max_input_tokens: int = 0


@dataclass(frozen=True)
class PromptStats:
    """One prompt hash: call events, estimated calls and estimated cost."""

    prompt_hash: str
    events: int
    weight: float
    cost_w: float


@dataclass
class InsightInputs:
    """Everything the rules read. ``context_windows`` maps a model name to its context window
    in tokens, as looked up by the caller (see :mod:`llmtap.read.context`); a model missing
    from it gets no context insight."""

    usage: Sequence[ModelUsage]
    latency: Sequence[ModelLatency] = ()
    details: Sequence[ModelDetails] = ()
    prompts: Sequence[PromptStats] = ()
    context_windows: Mapping[str, int] = field(default_factory=dict)


def insight(
    priority: str,
    category: str,
    recommendation: str,
    improvement: str,
    evidence: dict[str, Any],
    saving_usd: float | None = None,
    saving_s: float | None = None,
) -> dict[str, Any]:
    """Return one recommendation in the original profiler's shape, plus the saving."""
    return {
        "priority": priority,
        "category": category,
        "recommendation": recommendation,
        "potential_improvement": improvement,
        "evidence": evidence,
        "estimated_saving_usd": saving_usd,
        "estimated_saving_s": saving_s,
    }


def family(model: str) -> str:
    """Return a model's family: its name up to the first digit-free word after the vendor.

    ``gpt-4o-mini`` and ``gpt-4o`` share ``gpt``; ``anthropic.claude-3-haiku`` is ``claude``.
    """
    name = model.rsplit("/", 1)[-1].split(".", 1)[-1]
    match = re.match(r"[a-z]+", name.lower())
    return match.group(0) if match else name


def recommend(inputs: InsightInputs) -> list[dict[str, Any]]:
    """Return every recommendation, highest priority and largest saving first."""
    rules: tuple[Callable[[InsightInputs], Iterable[dict[str, Any]]], ...] = (
        cheaper_models,
        repeated_prompts,
        near_context_window,
        failures_and_retries,
        slow_backends,
        output_ratio_outliers,
    )
    found = [item for rule in rules for item in rule(inputs)]
    return sorted(found, key=_rank)


def _rank(item: dict[str, Any]) -> tuple[int, float]:
    saving = (item["estimated_saving_usd"] or 0.0) + (item["estimated_saving_s"] or 0.0) / 3600
    return PRIORITY_ORDER[item["priority"]], -saving


def _priority(share: float) -> str:
    return "high" if share >= 0.2 else "medium" if share >= 0.05 else "low"


def cheaper_models(inputs: InsightInputs) -> list[dict[str, Any]]:
    """Models with a cheaper sibling as reliable, as fast and used on similar prompt sizes."""
    total = sum(u.cost_usd for u in inputs.usage) or 1.0
    p95 = {(m.backend, m.model): m.p95 for m in inputs.latency}
    out = []
    for current in inputs.usage:
        best = _cheapest_alternative(current, inputs.usage, p95)
        if best is None or current.usd_per_token is None or best.usd_per_token is None:
            continue
        saving = current.cost_usd - current.tokens * best.usd_per_token
        out.append(
            insight(
                _priority(saving / total),
                "model_selection",
                f"Move calls from {current.model} to {best.model}: same family, similar "
                "success rate and latency on similar prompt sizes, lower price per token.",
                f"${saving:.2f} over the period if every call moved",
                {
                    "model": current.model,
                    "alternative": best.model,
                    "usd_per_1k_tokens": current.usd_per_token * 1000,
                    "alternative_usd_per_1k_tokens": best.usd_per_token * 1000,
                    "error_rate": current.error_rate,
                    "alternative_error_rate": best.error_rate,
                },
                saving_usd=saving,
            )
        )
    return out


def _cheapest_alternative(
    current: ModelUsage, usage: Sequence[ModelUsage], p95: Mapping[tuple[str, str], float]
) -> ModelUsage | None:
    own_price = current.usd_per_token
    if own_price is None or current.cost_usd <= 0:
        return None
    candidates = [
        other
        for other in usage
        if other.model != current.model
        and family(other.model) == family(current.model)
        and other.usd_per_token is not None
        and other.usd_per_token < own_price
        and other.error_rate <= current.error_rate + MAX_ERROR_RATE_GAP
        and _similar_size(current.avg_input, other.avg_input)
        and _as_fast(
            p95.get((current.backend, current.model)), p95.get((other.backend, other.model))
        )
    ]
    return min(candidates, key=lambda u: u.usd_per_token or 0.0, default=None)


def _similar_size(a: float, b: float) -> bool:
    return a > 0 and b > 0 and 0.5 <= b / a <= 2.0


def _as_fast(own: float | None, other: float | None) -> bool:
    return own is None or other is None or other <= own * MAX_LATENCY_RATIO


def repeated_prompts(inputs: InsightInputs) -> list[dict[str, Any]]:
    """Prompt hashes seen more than once: every repeat after the first a cache would serve."""
    repeats = [p for p in inputs.prompts if p.events >= 2 and p.weight > 1]
    if not repeats:
        return []
    saving = sum(p.cost_w * (p.weight - 1) / p.weight for p in repeats)
    calls = sum(p.weight - 1 for p in repeats)
    total = sum(u.cost_usd for u in inputs.usage) or 1.0
    top = sorted(repeats, key=lambda p: p.weight, reverse=True)[:5]
    return [
        insight(
            _priority(saving / total),
            "caching",
            f"Cache responses: {len(repeats)} prompts were sent repeatedly "
            f"(about {calls:.0f} repeated calls).",
            f"${saving:.2f} over the period",
            {
                "repeated_prompts": len(repeats),
                "repeated_calls": calls,
                "top": [{"prompt_hash": p.prompt_hash, "calls": p.weight} for p in top],
            },
            saving_usd=saving,
        )
    ]


def near_context_window(inputs: InsightInputs) -> list[dict[str, Any]]:
    """Models whose largest prompt used more than 80% of their known context window (a model
    whose window is not in ``inputs.context_windows`` is skipped, not guessed)."""
    out = []
    for details in inputs.details:
        window = inputs.context_windows.get(details.model)
        if not window or details.max_input_tokens < NEAR_CONTEXT_SHARE * window:
            continue
        share = details.max_input_tokens / window
        out.append(
            insight(
                "high" if share >= 0.95 else "medium",
                "context_optimization",
                f"Prune or summarise context for {details.model}: its largest prompt used "
                f"{share:.0%} of the {window}-token window.",
                "fewer truncation errors and lower input cost",
                {
                    "model": details.model,
                    "max_input_tokens": details.max_input_tokens,
                    "context_window": window,
                },
            )
        )
    return out


def failures_and_retries(inputs: InsightInputs) -> list[dict[str, Any]]:
    """Money spent on failed calls and the retries they caused, per model."""
    total = sum(u.cost_usd for u in inputs.usage) or 1.0
    out = []
    for details in inputs.details:
        if details.failed_cost_w <= 0 and details.retries_w <= 0:
            continue
        saving = details.failed_cost_w
        out.append(
            insight(
                _priority(saving / total),
                "reliability",
                f"Reduce failures and retries on {details.model}: check error types, "
                "timeouts and the circuit breaker.",
                f"${saving:.2f} spent on failed calls; about {details.retries_w:.0f} retries",
                {
                    "model": details.model,
                    "failed_calls": details.failed_w,
                    "failed_cost_usd": details.failed_cost_w,
                    "retries": details.retries_w,
                },
                saving_usd=saving,
            )
        )
    return out


def slow_backends(inputs: InsightInputs) -> list[dict[str, Any]]:
    """Backends whose mean latency is 1.5 times the fastest backend's or more."""
    by_backend = _backend_means(inputs.latency)
    if len(by_backend) < 2:
        return []
    fastest = min(by_backend, key=lambda b: by_backend[b][0])
    fast_mean = by_backend[fastest][0]
    out = []
    for backend, (mean, weight) in by_backend.items():
        if backend == fastest or mean < SLOW_RATIO * fast_mean:
            continue
        saving_s = (mean - fast_mean) * weight
        out.append(
            insight(
                "medium",
                "performance",
                f"Route latency-sensitive calls from {backend} to {fastest}: "
                f"{mean:.2f} s mean against {fast_mean:.2f} s.",
                f"{saving_s:.0f} s of total latency over the period",
                {
                    "backend": backend,
                    "mean_s": mean,
                    "alternative": fastest,
                    "alternative_mean_s": fast_mean,
                    "calls": weight,
                },
                saving_s=saving_s,
            )
        )
    return out


def _backend_means(latency: Sequence[ModelLatency]) -> dict[str, tuple[float, float]]:
    sums: dict[str, list[float]] = {}
    for row in latency:
        acc = sums.setdefault(row.backend, [0.0, 0.0])
        acc[0] += row.mean * row.weight
        acc[1] += row.weight
    return {b: (s / w, w) for b, (s, w) in sums.items() if w > 0}


def output_ratio_outliers(inputs: InsightInputs) -> list[dict[str, Any]]:
    """Models whose output/input token ratio is over three times the median model's."""
    ratios = {u.model: u.output_tokens / u.input_tokens for u in inputs.usage if u.input_tokens}
    if len(ratios) < 3:
        return []
    median = float(np.median(list(ratios.values())))
    return [
        insight(
            "low",
            "prompt_efficiency",
            f"Cap max_tokens or ask for shorter answers on {model}: it writes {ratio:.2f} "
            f"output tokens per input token against a median of {median:.2f}.",
            "lower output cost and latency",
            {"model": model, "output_input_ratio": ratio, "median_ratio": median},
        )
        for model, ratio in ratios.items()
        if median > 0 and ratio > 3 * median
    ]
