"""Benchmark: CostCalculator.cost on a warm cache against genai_prices.calc_price, in one run.

Prints one line per measurement, then one JSON object on the last line:
``{"calc_price_us": ..., "cached_cost_us": ..., "ratio": calc_price_us / cached_cost_us}``,
each the median over several rounds of the mean time per call within a round.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from genai_prices import Usage, calc_price

from llmtap.analyzers.pricing import CostCalculator

# (llmtap backend, model, genai-prices provider_id)
MODELS = [
    ("openai", "gpt-4o", "openai"),
    ("openai", "gpt-4o-mini", "openai"),
    ("anthropic", "claude-sonnet-4-5", "anthropic"),
    ("bedrock", "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "aws"),
    ("google", "gemini-2.5-pro", "google"),
    ("mistral", "mistral-large-latest", "mistral"),
]
TOKENS = (12_000, 800, 8_000, 0, 300)  # input, output, cache read, cache write, reasoning
ROUNDS = 9


def median_us(run: Callable[[], None], calls_per_round: int) -> float:
    """Median over ROUNDS of the mean µs per call, after one warm-up round."""
    run()
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        run()
        samples.append((time.perf_counter_ns() - start) / calls_per_round / 1000)
    return statistics.median(samples)


def bench_calc_price(repeat: int) -> float:
    """µs per genai_prices.calc_price call on the sample models."""
    i, o, cr, cw, r = TOKENS
    usage = Usage(
        input_tokens=i,
        output_tokens=o,
        cache_read_tokens=cr,
        cache_write_tokens=cw,
        output_reasoning_tokens=r,
    )

    def run() -> None:
        for _ in range(repeat):
            for _, model, provider_id in MODELS:
                calc_price(usage, model, provider_id=provider_id)

    return median_us(run, repeat * len(MODELS))


def bench_cached_cost(repeat: int) -> float:
    """µs per CostCalculator.cost call on the same models, cache already warm."""
    calc = CostCalculator(at=datetime.now(tz=UTC))
    i, o, cr, cw, r = TOKENS
    for backend, model, _ in MODELS:
        if calc.cost(backend, model) is None:
            raise SystemExit(f"benchmark model not priced: {backend}/{model}")
    cost = calc.cost

    def run() -> None:
        for _ in range(repeat):
            for backend, model, _ in MODELS:
                cost(backend, model, i, o, cr, cw, r)

    return median_us(run, repeat * len(MODELS))


def main() -> None:
    """Run both measurements and print the summary JSON last."""
    calc_us = bench_calc_price(repeat=100)
    print(f"genai_prices.calc_price: {calc_us:.2f} us/call", file=sys.stderr)
    cached_us = bench_cached_cost(repeat=20_000)
    print(f"CostCalculator.cost (warm cache): {cached_us:.3f} us/call", file=sys.stderr)
    summary = {
        "calc_price_us": round(calc_us, 3),
        "cached_cost_us": round(cached_us, 4),
        "ratio": round(calc_us / cached_us, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
