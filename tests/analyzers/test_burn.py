"""Burn rate and month-end projection: parametrized tables with hand-computed answers."""

from __future__ import annotations

import pytest

from llmtap.analyzers import burn

DAY = 86_400
JAN1 = 1_767_225_600  # 2026-01-01T00:00Z (January has 31 days)
JAN11 = JAN1 + 10 * DAY


@pytest.mark.parametrize(
    ("cost", "hours", "hourly", "daily"),
    [(24.0, 24, 1.0, 24.0), (0.0, 24, 0.0, 0.0), (5.0, 0, 0.0, 0.0), (7.0, 168, 7 / 168, 1.0)],
)
def test_burn_rate(cost: float, hours: float, hourly: float, daily: float) -> None:
    """Hourly burn is cost over hours; daily is 24 times that; no hours means no burn."""
    got = burn.burn_rate(cost, hours)
    assert got == {"hourly_usd": pytest.approx(hourly), "daily_usd": pytest.approx(daily)}


def test_constant_spend_projects_exactly() -> None:
    """$10 every day for ten days, none yet today: the month ends at 31 x $10, no band."""
    daily = {JAN1 + i * DAY: 10.0 for i in range(10)}
    got = burn.project_month(daily, JAN11)
    assert got.trend_model == "linear"
    assert got.month_to_date_usd == 100.0
    assert got.projected_month_end_usd == pytest.approx(310.0)
    assert got.projection_low_usd == pytest.approx(310.0)
    assert got.projection_high_usd == pytest.approx(310.0)
    assert got.trend_usd_per_day == pytest.approx(0.0, abs=1e-9)


def test_a_rising_trend_is_extrapolated() -> None:
    """Spend growing $1/day (1, 2 ... 10) continues: today 11, then 12 ... 31."""
    daily = {JAN1 + i * DAY: float(i + 1) for i in range(10)}
    got = burn.project_month(daily, JAN11)
    assert got.trend_usd_per_day == pytest.approx(1.0)
    assert got.projected_month_end_usd == pytest.approx(sum(range(1, 32)))


def test_noise_widens_the_band() -> None:
    """Noisy days give a band around the projection that contains it."""
    daily = {JAN1 + i * DAY: 10.0 + (3 if i % 2 else -3) for i in range(10)}
    got = burn.project_month(daily, JAN11)
    assert got.projection_low_usd < got.projected_month_end_usd < got.projection_high_usd


@pytest.mark.parametrize(
    ("budget", "exhausted"),
    [
        (50.0, "2026-01-06T00:00:00Z"),  # already spent by now: exhausted "now"
        (105.0, "2026-01-11T12:00:00Z"),  # half way through today
        (150.0, "2026-01-16T00:00:00Z"),
        (1000.0, None),  # not within the month
    ],
)
def test_budget_exhaustion_date(budget: float, exhausted: str | None) -> None:
    """At $10/day the budget runs out where the cumulative spend crosses it."""
    daily = {JAN1 + i * DAY: 10.0 for i in range(10)}
    now = JAN1 + 5 * DAY if budget == 50.0 else JAN11
    if budget == 50.0:
        daily = {JAN1 + i * DAY: 10.0 for i in range(5)} | {JAN1 + 5 * DAY: 0.0}
    got = burn.project_month(daily, now, budget)
    assert got.budget_exhausted_at == exhausted
    assert got.budget_used_pct == pytest.approx(100 * got.month_to_date_usd / budget)


def test_only_today_uses_its_pace() -> None:
    """With no complete day, today's spend so far is scaled to a whole day."""
    got = burn.project_month({JAN11: 3.0}, JAN11 + DAY / 4)
    assert got.trend_model == "today"
    assert got.daily_rate_usd == pytest.approx(12.0)
    assert got.projected_month_end_usd == pytest.approx(3.0 + 12.0 * (21 - 0.25))


def test_two_days_use_their_mean() -> None:
    """Fewer than three complete days: the trend is their mean, flat."""
    trend = burn.fit_trend([4.0, 6.0], 0.0, 0.5)
    assert (trend.model, trend.level, trend.slope) == ("mean", 5.0, 0.0)
    assert trend.at(3) == 5.0


def test_a_falling_trend_never_goes_negative() -> None:
    """A projected daily spend below zero counts as zero."""
    trend = burn.fit_trend([30.0, 20.0, 10.0], 0.0, 0.0)
    assert trend.at(0) == pytest.approx(0.0, abs=1e-9) and trend.at(5) == 0.0


@pytest.mark.parametrize(
    ("now", "first"),
    [(JAN11 + DAY / 2, JAN11 - burn.TREND_DAYS * DAY), (JAN1 + 30 * DAY, JAN1)],
)
def test_history_starts_at_the_trend_window_or_the_month(now: float, first: int) -> None:
    """project_month reads from the trend window's first day, or the 1st if that is earlier."""
    assert burn.history_start(now) == first
    assert burn.month_bounds(now) == (JAN1, JAN1 + 31 * DAY)
