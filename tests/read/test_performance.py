"""Performance analysis against seeded synthetic traffic: counts, rates and timing splits."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
import redis

from llmtap.read import tools
from tests.read.truth import NOW, Truth


def test_performance_analysis_counts_and_rates(r: redis.Redis, truth: Truth) -> None:
    """Latency rows count the call events per model; error rates and calls are exact."""
    data = tools.get_performance_analysis(r, 24, now=NOW)
    counts = Counter((c.backend, c.model_name) for c in truth.calls)
    assert {(x["backend"], x["model"]): x["count"] for x in data["latency"]} == dict(counts)
    assert data["overall"]["count"] == len(truth.calls)
    assert data["throughput"]["calls"] == truth.sum_rows("calls")
    by_model = data["error_rates"]["by_model"]
    for model, row in by_model.items():
        calls, errors = truth.sum_rows("calls", model=model), truth.sum_rows("errors", model=model)
        assert (row["calls"], row["errors"]) == (calls, errors)
    ttft = Counter((c.backend, c.model_name) for c in truth.calls if c.ttft is not None)
    assert {(x["backend"], x["model"]): x["count"] for x in data["time_to_first_token"]} == ttft
    backends = {x["backend"] for x in data["backend_comparison"]}
    assert backends == {c.backend for c in truth.calls}
    assert min(x["p95_vs_fastest"] for x in data["backend_comparison"]) == 1.0


def test_network_share_is_the_weighted_mean_split(r: redis.Redis, truth: Truth) -> None:
    """The mean network time per model is the sample-weighted mean of the events'."""
    data = tools.get_performance_analysis(r, 24, now=NOW)["network_vs_processing"]
    sums: defaultdict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for c in truth.calls:
        if c.network_latency is not None:
            acc = sums[c.backend, c.model_name]
            acc[0] += c.network_latency / c.sample_rate
            acc[1] += 1 / c.sample_rate
    for row in data:
        s, w = sums[row["backend"], row["model"]]
        assert row["network_mean_s"] == pytest.approx(s / w, rel=1e-9)
