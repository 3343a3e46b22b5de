"""Anomaly detection: robust z-scores of the latest value against its baseline."""

from __future__ import annotations

import math

import pytest

from llmtap.analyzers import anomaly


@pytest.mark.parametrize(
    ("baseline", "value", "score"),
    [
        ([1, 2, 3, 4, 5], 3, 0.0),  # the median itself
        ([1, 2, 3, 4, 5], 5.9652, 2.0),  # MAD 1 -> spread 1.4826
        ([2, 2, 2, 2, 2], 2, 0.0),  # constant baseline, same value
        ([2, 2, 2, 2, 2], 3, math.inf),  # constant baseline, any change
        ([2, 2, 2, 2, 2], 1, -math.inf),
        ([0, 0, 0, 0, 10], 0, 0.0),  # MAD 0, mean absolute deviation 2 takes over
    ],
)
def test_robust_score(baseline: list[float], value: float, score: float) -> None:
    """The score is (value - median) / (1.4826 MAD), with the fallbacks for a zero MAD."""
    assert anomaly.robust_score(baseline, value) == pytest.approx(score, rel=1e-4)


def test_a_spike_is_an_anomaly_and_normal_noise_is_not() -> None:
    """A cost rate ten times the usual is flagged up; a usual one is not."""
    usual = [1.0, 1.2, 0.9, 1.1, 1.0, 0.95, 1.05, 1.1]
    spike = anomaly.detect("cost", [*usual, 10.0])
    assert spike is not None and spike.is_anomaly and spike.direction == "up"
    calm = anomaly.detect("cost", [*usual, 1.08])
    assert calm is not None and not calm.is_anomaly


def test_a_short_series_has_no_verdict() -> None:
    """Fewer than six baseline values give no verdict at all."""
    assert anomaly.detect("cost", [1.0, 2.0, 3.0]) is None


def test_scan_returns_only_anomalies_and_json_safe_scores() -> None:
    """scan keeps the flagged series; an infinite score is null in the dict."""
    found = anomaly.scan({"flat": [1.0] * 7 + [5.0], "calm": [1.0, 2.0] * 4 + [1.5]})
    assert [a.series for a in found] == ["flat"]
    assert found[0].as_dict()["score"] is None


def test_an_empty_baseline_is_an_error() -> None:
    """Scoring against nothing raises ValueError."""
    with pytest.raises(ValueError, match="empty"):
        anomaly.robust_score([], 1.0)
