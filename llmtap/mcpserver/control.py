"""The control plane the MCP tools add to the profiler's nine: the alert rules in force, budget
use against the budget rules, and silences with a required comment and a bounded duration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

import redis

from llmtap.analyzers import burn
from llmtap.analyzers.rules import Rule, default_rules, parse_rules
from llmtap.read import cost, query, silences
from llmtap.settings import Settings

BUDGET_KINDS: Final = ("monthly_budget", "projected_month_end_above")
MIN_SILENCE_MINUTES: Final = 1.0
MAX_SILENCE_MINUTES: Final = silences.MAX_SILENCE_S / 60.0  # the one cap, in minutes


def load_rules(path: str | None, settings: Settings) -> list[Rule]:
    """Return the default rules from ``settings`` and the rules of the file at ``path``.

    A file rule with a default rule's name replaces it (as the alerts worker does). Raises
    RuleError (a ValueError) for a bad file and OSError for an unreadable one.
    """
    rules = {rule.name: rule for rule in default_rules(settings)}
    if path:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        rules.update((rule.name, rule) for rule in parse_rules(text, path))
    return list(rules.values())


def budgets(
    client: redis.Redis, rules: Sequence[Rule], now: float, monthly_budget_usd: float | None
) -> dict[str, Any]:
    """Return the month-to-date spend, the month-end projection and each budget rule's use.

    A rule's scope is its filter (``model=gpt-4o``) or the total; ``used_pct`` is the month's
    spend in that scope against ``budget_usd``, ``thresholds_crossed`` the alert thresholds
    it has reached. ``monthly_budget_usd`` adds an ad hoc budget on the total.
    """
    month_start, month_end = burn.month_bounds(now)
    projection = cost.month_projection(client, now, monthly_budget_usd)
    span = (month_start, now, month_end)
    rows = [
        row
        for rule in rules
        if rule.kind in BUDGET_KINDS
        for row in _budget_rows(client, rule, span, projection)
    ]
    return {
        "month": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m"),
        "month_to_date_usd": projection["month_to_date_usd"],
        "projection": projection,
        "budgets": rows,
    }


def _budget_rows(
    client: redis.Redis,
    rule: Rule,
    span: tuple[float, float, float],
    projection: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One row per scope: the rule's filter value, each value it groups by, or the total."""
    dimension = rule.dimension
    spend = query.cost_by(client, dimension, span[0], span[1])
    if dimension == "total":
        scopes = ["total"]
    elif dimension in rule.filters:
        scopes = [rule.filters[dimension]]
    else:
        scopes = sorted(spend)
    return [
        _budget_row(rule, dimension, scope, spend.get(scope, {}).get("cost_usd", 0.0), span,
                    projection)
        for scope in scopes
    ]  # fmt: skip


def _budget_row(
    rule: Rule,
    dimension: str,
    value: str,
    spent: float,
    span: tuple[float, float, float],
    projection: Mapping[str, Any],
) -> dict[str, Any]:
    month_start, now, month_end = span
    used = 100.0 * spent / rule.budget_usd
    if dimension == "total":
        projected = projection["projected_month_end_usd"]
    else:  # per-dimension day totals are not kept: project this scope at its month pace
        projected = spent * (month_end - month_start) / max(now - month_start, 3600.0)
    return {
        "rule": rule.name,
        "kind": rule.kind,
        "severity": rule.severity,
        "scope": {} if dimension == "total" else {dimension: value},
        "budget_usd": rule.budget_usd,
        "spent_usd": spent,
        "used_pct": used,
        "projected_month_end_usd": projected,
        "projected_used_pct": 100.0 * projected / rule.budget_usd,
        "thresholds_pct": list(rule.thresholds_pct) if rule.kind == "monthly_budget" else [],
        "thresholds_crossed": [t for t in rule.thresholds_pct if used >= t]
        if rule.kind == "monthly_budget"
        else [],
    }


def create_silence(
    client: redis.Redis,
    matchers: Mapping[str, str],
    duration_minutes: float,
    comment: str,
    created_by: str,
    now: float,
) -> dict[str, Any]:
    """Store a silence through :mod:`llmtap.read.silences`; return it.

    Raises ValueError without a matcher, without a comment, or for a duration outside
    [MIN_SILENCE_MINUTES, MAX_SILENCE_MINUTES].
    """
    if not comment.strip():
        raise ValueError("comment: required (say why these alerts are silenced)")
    if not MIN_SILENCE_MINUTES <= duration_minutes <= MAX_SILENCE_MINUTES:
        raise ValueError(
            f"duration_minutes: between {MIN_SILENCE_MINUTES:g} and {MAX_SILENCE_MINUTES:g}"
        )
    if any(not label for label in matchers):
        raise ValueError("matchers: a label name may not be empty")
    return silences.create_silence(
        client, matchers, duration_minutes * 60.0, now, comment.strip(), created_by
    )
