"""Rule evaluation: per-call rules on a call event, windowed rules on aggregates, and silences.

Nothing here touches Redis or the clock: per-call rules take a :class:`~llmtap.events.CallEvent`,
windowed rules take the aggregates the evaluator read (:class:`WindowData`) and ``now``. The
projected-spend rule quotes :func:`llmtap.analyzers.burn.project_month`, like the reports do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from llmtap import events
from llmtap.analyzers import burn
from llmtap.analyzers.rules.model import Observation, Rule


def call_label(call: events.CallEvent, label: str) -> str:
    """Return the value of ``label`` (backend, model, tenant, session, error_type, tag:x)."""
    if label.startswith("tag:"):
        return call.tags.get(label[4:], "")
    value = {
        "backend": call.backend,
        "model": call.model_name,
        "tenant": call.tenant,
        "session": call.session_id,
        "error_type": call.error_type,
    }.get(label)
    return value or ""


def call_matches_filters(rule: Rule, call: events.CallEvent) -> bool:
    """True when the call has every filtered label value and tag of the rule."""
    for label, wanted in rule.filters.items():
        if call_label(call, label) != wanted:
            return False
    return all(call.tags.get(k) == v for k, v in rule.tags.items())


def call_value(rule: Rule, call: events.CallEvent) -> float | None:
    """Return the value that breaks a per-call rule, or None when the call does not break it."""
    kind = rule.kind
    if kind == "cost_above":
        cost = call.estimated_cost_usd
        return cost if cost is not None and cost > rule.threshold else None
    if kind == "latency_above":
        return call.latency if call.latency > rule.threshold else None
    if kind == "memory_above":
        peak = call.memory_peak_bytes
        mb = peak / 1e6 if peak is not None else None
        return mb if mb is not None and mb > rule.threshold else None
    if kind == "error":
        failed = not call.success and rule.error_type in (None, call.error_type)
        return 1.0 if failed else None
    if kind == "breaker_open":
        opened = call.circuit_breaker_triggered or call.circuit_breaker_state == "open"
        return 1.0 if opened else None
    return None


def evaluate_call(rules: Iterable[Rule], call: events.CallEvent) -> list[Observation]:
    """Return one observation per per-call rule the call breaks."""
    out: list[Observation] = []
    for rule in rules:
        if not rule.per_call or not call_matches_filters(rule, call):
            continue
        value = call_value(rule, call)
        if value is not None:
            labels = {label: call_label(call, label) for label in rule.group_by}
            out.append(Observation(rule, labels, value, rule.threshold, call.end_time))
    return out


# --- windowed evaluation ---------------------------------------------------------------


@dataclass(frozen=True)
class WindowData:
    """What the evaluator read for one windowed rule: rows by group value.

    ``current``: group -> metrics over the rule's window (``cost_usd``, ``calls``, ``errors``,
    ``p95``). ``baseline``: the same over the baseline span (anomaly rules only).
    ``daily``: group -> UTC day start -> USD from :func:`~llmtap.analyzers.burn.history_start`
    to today (projected-spend rules). Group values are ``total``, a dimension value, or
    ``backend/model`` for latency.
    """

    current: Mapping[str, Mapping[str, float]]
    baseline: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    daily: Mapping[str, Mapping[int, float]] = field(default_factory=dict)


def window_span(rule: Rule, now: float) -> tuple[float, float]:
    """Return the ``[since, until)`` a windowed rule reads at ``now``."""
    if rule.kind == "daily_cost_above":
        return now - now % 86400, now
    if rule.kind in ("monthly_budget", "projected_month_end_above"):
        return burn.month_bounds(now)[0], now
    return now - rule.window_s, now


def baseline_span(rule: Rule, now: float) -> tuple[float, float]:
    """Return the span an anomaly rule compares its window with (just before the window)."""
    since, _ = window_span(rule, now)
    return since - rule.baseline_s, since


def evaluate_window(rule: Rule, data: WindowData, now: float) -> list[Observation]:
    """Return the observations of a windowed rule over the data read for it at ``now``."""
    out: list[Observation] = []
    for group in sorted(data.current):
        if not _group_selected(rule, group):
            continue
        labels = _group_labels(rule, group)
        for value, threshold, extra in _window_values(rule, group, data, now):
            if value > threshold:
                out.append(Observation(rule, {**labels, **extra}, value, threshold, now))
    return out


def _by_model(rule: Rule) -> bool:
    """True for rules that read latency, which is kept per (backend, model) pair."""
    return rule.kind == "p95_latency_above" or (rule.kind == "anomaly" and rule.metric == "latency")


def _group_selected(rule: Rule, group: str) -> bool:
    if _by_model(rule):
        backend, _, model = group.partition("/")
        got = {"backend": backend, "model": model}
        return all(got.get(k) == v for k, v in rule.filters.items())
    wanted = rule.filters.get(rule.dimension)
    return wanted is None or wanted == group


def _group_labels(rule: Rule, group: str) -> dict[str, str]:
    if _by_model(rule):
        backend, _, model = group.partition("/")
        got = {"backend": backend, "model": model}
        return {k: got[k] for k in ("backend", "model") if k in rule.group_by}
    return {} if rule.dimension == "total" else {rule.dimension: group}


Value = tuple[float, float, dict[str, str]]


def _window_values(rule: Rule, group: str, data: WindowData, now: float) -> list[Value]:
    kind = rule.kind
    row = data.current[group]
    if kind == "daily_cost_above":
        return [(row.get("cost_usd", 0.0), rule.threshold, {})]
    if kind == "monthly_budget":
        return _budget_values(rule, row.get("cost_usd", 0.0), now)
    if kind == "projected_month_end_above":
        daily = data.daily.get(group) or _spread(row.get("cost_usd", 0.0), now)
        return [(burn.project_month(daily, now).projected_month_end_usd, rule.budget_usd, {})]
    if kind == "error_rate_above":
        return _error_rate_values(rule, row)
    if kind == "p95_latency_above":
        return [(row.get("p95", 0.0), rule.threshold, {})]
    return _anomaly_values(rule, row, data.baseline.get(group))


def _budget_values(rule: Rule, spend: float, now: float) -> list[Value]:
    # ">=" semantics at a threshold: reaching 100% of the budget is crossing it.
    period = datetime.fromtimestamp(now, UTC).strftime("%Y-%m")
    pct = 100.0 * spend / rule.budget_usd
    return [
        (pct, t - 1e-9, {"threshold_pct": f"{t:g}", "period": period})
        for t in rule.thresholds_pct
        if pct >= t
    ]


def _spread(month_to_date_usd: float, now: float) -> dict[int, float]:
    """Return the month-to-date spend spread evenly over the month so far, per UTC day.

    For a reader that supplies only the month's total: burn's trend over an even spread is
    the month's average pace (over an hour at least: no wild projection on the 1st).
    """
    start = burn.month_bounds(now)[0]
    rate = month_to_date_usd / max(now - start, 3600.0)
    days = range(start, int(now // burn.DAY) * burn.DAY + 1, burn.DAY)
    return {day: rate * (min(day + burn.DAY, now) - day) for day in days}


def _error_rate_values(rule: Rule, row: Mapping[str, float]) -> list[Value]:
    calls = row.get("calls", 0.0)
    if calls < max(rule.min_calls, 1):
        return []
    return [(100.0 * row.get("errors", 0.0) / calls, rule.threshold, {})]


def _anomaly_values(
    rule: Rule, row: Mapping[str, float], baseline: Mapping[str, float] | None
) -> list[Value]:
    metric = "cost_usd" if rule.metric == "cost" else "p95"
    current = row.get(metric, 0.0)
    if not baseline or baseline.get(metric, 0.0) <= 0:
        return []
    reference = baseline[metric]
    if rule.metric == "cost":  # compare like with like: cost per window length
        reference *= rule.window_s / rule.baseline_s
    if current <= rule.threshold:  # ignore anomalies below an absolute floor
        return []
    return [(current / reference, rule.factor, {})]


# --- silences --------------------------------------------------------------------------


def silenced(labels: Mapping[str, str], matchers: Mapping[str, str]) -> bool:
    """True when every matcher equals the alert's label (``rule`` included); ``*`` matches any."""
    return all((v == "*" and k in labels) or labels.get(k) == v for k, v in matchers.items())
