"""Anomaly detection for cost and latency rates against a recent baseline (pure, numpy).

The latest value of a series is compared with the values before it by a robust z-score:
``(x - median) / (1.4826 * MAD)``, falling back to the mean absolute deviation, then the
standard deviation, when the MAD is zero. A score beyond ``threshold`` (3.5 by default, as
Iglewicz and Hoaglin suggest) is an anomaly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np

MAD_SCALE: Final = 1.4826
DEFAULT_THRESHOLD: Final = 3.5
MIN_BASELINE: Final = 6


@dataclass(frozen=True)
class Anomaly:
    """The verdict on the latest value of one series."""

    series: str
    value: float
    baseline_median: float
    score: float
    is_anomaly: bool
    direction: str

    def as_dict(self) -> dict[str, Any]:
        """Return the verdict as a JSON-ready dict (an infinite score becomes None)."""
        out = asdict(self)
        out["score"] = self.score if math.isfinite(self.score) else None
        return out


def robust_score(baseline: Sequence[float], value: float) -> float:
    """Return the robust z-score of ``value`` against ``baseline`` (inf when the baseline is
    constant and the value differs, 0 when it equals it). Raises ValueError if empty."""
    if not baseline:
        raise ValueError("empty baseline")
    base = np.asarray(baseline, dtype=np.float64)
    median = float(np.median(base))
    deviations = np.abs(base - median)
    spread = MAD_SCALE * float(np.median(deviations))
    if spread == 0:
        spread = 1.253314 * float(deviations.mean())  # mean absolute deviation, normal-scaled
    if spread == 0:
        return 0.0 if value == median else math.copysign(math.inf, value - median)
    return (value - median) / spread


def detect(
    name: str,
    series: Sequence[float],
    threshold: float = DEFAULT_THRESHOLD,
    min_baseline: int = MIN_BASELINE,
) -> Anomaly | None:
    """Judge the last value of ``series`` against the ones before it.

    Returns None when fewer than ``min_baseline`` values precede it.
    """
    if len(series) < min_baseline + 1:
        return None
    baseline, value = list(series[:-1]), float(series[-1])
    score = robust_score(baseline, value)
    return Anomaly(
        series=name,
        value=value,
        baseline_median=float(np.median(baseline)),
        score=score,
        is_anomaly=abs(score) > threshold,
        direction="up" if score > 0 else "down" if score < 0 else "flat",
    )


def scan(
    named: Mapping[str, Sequence[float]], threshold: float = DEFAULT_THRESHOLD
) -> list[Anomaly]:
    """Return the anomalies (only those) among the latest values of several series."""
    verdicts = (detect(name, series, threshold) for name, series in named.items())
    return [v for v in verdicts if v is not None and v.is_anomaly]
