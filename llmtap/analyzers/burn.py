"""Burn rate and month-end projection of spend, from daily totals (pure; ``now`` is passed in).

The trend is a least-squares line over the complete days of the last ``TREND_DAYS`` (a mean
when fewer than three days are known, today's pace when none are), extrapolated over the
rest of the month; the band is 1.96 residual standard deviations per remaining day, added in
quadrature. The budget exhaustion time is where the projected cumulative spend reaches the
budget, interpolated within the day.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np

DAY: Final = 86_400
TREND_DAYS: Final = 28
Z_95: Final = 1.96


def burn_rate(cost_usd: float, hours: float) -> dict[str, float]:
    """Return the hourly and daily burn of ``cost_usd`` spent over ``hours`` (0 if no hours)."""
    hourly = cost_usd / hours if hours > 0 else 0.0
    return {"hourly_usd": hourly, "daily_usd": hourly * 24}


@dataclass(frozen=True)
class Trend:
    """A daily-spend trend: ``level`` USD/day at day index 0 (today), ``slope`` USD/day²."""

    model: str
    level: float
    slope: float
    sigma: float

    def at(self, day_index: float) -> float:
        """Return the expected spend (never negative) of the day ``day_index`` days from today."""
        return max(0.0, self.level + self.slope * day_index)


def fit_trend(complete: list[float], today_usd: float, today_fraction: float) -> Trend:
    """Fit the trend to complete days (oldest first, the last one is yesterday).

    With no complete day, today's pace (spend so far / fraction of the day elapsed) is used.
    """
    if not complete:
        pace = today_usd / today_fraction if today_fraction > 0 else 0.0
        return Trend("today", pace, 0.0, 0.0)
    y = np.asarray(complete, dtype=np.float64)
    if y.size < 3:
        return Trend("mean", float(y.mean()), 0.0, float(y.std()))
    x = np.arange(-y.size, 0, dtype=np.float64)  # yesterday is -1, today 0
    slope, level = np.polyfit(x, y, 1)
    residuals = y - (level + slope * x)
    sigma = float(np.sqrt(np.sum(residuals**2) / (y.size - 2)))
    return Trend("linear", float(level), float(slope), sigma)


@dataclass(frozen=True)
class Projection:
    """Month-to-date spend and the projected month-end spend, with a 95% band and budget use."""

    month_to_date_usd: float
    projected_month_end_usd: float
    projection_low_usd: float
    projection_high_usd: float
    trend_model: str
    trend_usd_per_day: float
    daily_rate_usd: float
    days_remaining: float
    budget_usd: float | None
    budget_used_pct: float | None
    budget_exhausted_at: str | None

    def as_dict(self) -> dict[str, Any]:
        """Return the projection as a JSON-ready dict."""
        return asdict(self)


def project_month(
    daily_usd: Mapping[int, float], now: float, budget_usd: float | None = None
) -> Projection:
    """Project the month-end spend from ``daily_usd`` (UTC day start -> USD; today partial).

    Days missing from the mapping count as zero spend once any earlier day is known.
    """
    today = int(now // DAY) * DAY
    month_start, month_end = month_bounds(now)
    mtd = sum(usd for day, usd in daily_usd.items() if month_start <= day <= today)
    fraction = (now - today) / DAY
    trend = fit_trend(_complete_days(daily_usd, today), daily_usd.get(today, 0.0), fraction)
    remaining_days = (month_end - today) / DAY  # today included
    future = _future_spend(trend, fraction, int(remaining_days))
    half_band = Z_95 * trend.sigma * math.sqrt(max(remaining_days - fraction, 0.0))
    projected = mtd + sum(amount for _, amount in future)
    exhausted = _exhaustion(mtd, future, now, budget_usd) if budget_usd else None
    return Projection(
        month_to_date_usd=mtd,
        projected_month_end_usd=projected,
        projection_low_usd=max(mtd, projected - half_band),
        projection_high_usd=projected + half_band,
        trend_model=trend.model,
        trend_usd_per_day=trend.slope,
        daily_rate_usd=trend.at(0),
        days_remaining=remaining_days - fraction,
        budget_usd=budget_usd,
        budget_used_pct=100 * mtd / budget_usd if budget_usd else None,
        budget_exhausted_at=exhausted,
    )


def month_bounds(now: float) -> tuple[int, int]:
    """Return the Unix start and end of the UTC calendar month holding ``now``."""
    date = dt.datetime.fromtimestamp(now, dt.UTC)
    days = calendar.monthrange(date.year, date.month)[1]
    start = int(dt.datetime(date.year, date.month, 1, tzinfo=dt.UTC).timestamp())
    return start, start + days * DAY


def history_start(now: float) -> int:
    """Return the first UTC day start :func:`project_month` reads at ``now``.

    That is the month's first day or the first day of the trend window, whichever is earlier.
    """
    return min(month_bounds(now)[0], int(now // DAY) * DAY - TREND_DAYS * DAY)


def _complete_days(daily_usd: Mapping[int, float], today: int) -> list[float]:
    known = [day for day in daily_usd if today - TREND_DAYS * DAY <= day < today]
    if not known:
        return []
    return [daily_usd.get(day, 0.0) for day in range(min(known), today, DAY)]


def _future_spend(trend: Trend, fraction: float, days: int) -> list[tuple[float, float]]:
    """Return (start, amount) per remaining slice: the rest of today, then each later day.

    ``start`` is in days from today's start.
    """
    slices = [(fraction, trend.at(0) * (1 - fraction))]
    slices += [(float(i), trend.at(i)) for i in range(1, days)]
    return slices


def _exhaustion(
    mtd: float, future: list[tuple[float, float]], now: float, budget: float
) -> str | None:
    if mtd >= budget:
        return _iso(now)
    today = int(now // DAY) * DAY
    spent = mtd
    for start, amount in future:
        if amount > 0 and spent + amount >= budget:
            length = (1 - start) if start < 1 else 1.0
            at = today + (start + length * (budget - spent) / amount) * DAY
            return _iso(at)
        spent += amount
    return None


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
