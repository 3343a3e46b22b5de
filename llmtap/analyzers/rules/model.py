"""The alert rule model: rule kinds, severities and labels, :class:`Rule`, :class:`Observation`.

An observation's fingerprint is the rule name plus its label values; :func:`describe` gives its
one-line summary. Parsing lives in :mod:`.parse`, evaluation in :mod:`.evaluate`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

PER_CALL_KINDS: Final = ("cost_above", "latency_above", "memory_above", "error", "breaker_open")
WINDOW_KINDS: Final = (
    "daily_cost_above",
    "monthly_budget",
    "projected_month_end_above",
    "error_rate_above",
    "p95_latency_above",
    "anomaly",
)
KINDS: Final = PER_CALL_KINDS + WINDOW_KINDS
SEVERITIES: Final = ("info", "warning", "critical")
# Labels a per-call rule may group by (plus ``tag:<name>``).
CALL_LABELS: Final = ("backend", "model", "tenant", "session", "error_type")
# Dimensions a windowed rule may group or filter by (the aggregates have no cross products).
WINDOW_DIMENSIONS: Final = ("backend", "model", "tenant")
NEVER: Final = 10 * 365 * 86400.0


class RuleError(ValueError):
    """The rules file is unusable; the message names the source, the line and the reason."""


@dataclass(frozen=True)
class Rule:
    """One alert rule; see docs/alerts.md for every field's meaning and default."""

    name: str
    kind: str
    threshold: float = 0.0
    severity: str = "warning"
    filters: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()
    for_s: float = 0.0
    repeat_interval_s: float = 4 * 3600.0
    resolve_after_s: float = 300.0
    send_resolved: bool = True
    error_type: str | None = None
    window_s: float = 300.0
    min_calls: int = 20
    budget_usd: float = 0.0
    thresholds_pct: tuple[float, ...] = (50.0, 80.0, 100.0)
    metric: str = "cost"
    factor: float = 3.0
    baseline_s: float = 3600.0
    summary: str = ""

    @property
    def per_call(self) -> bool:
        """True for rules evaluated on each call event (not on the tick)."""
        return self.kind in PER_CALL_KINDS

    @property
    def dimension(self) -> str:
        """The aggregate dimension a windowed rule reads: ``total`` or one of WINDOW_DIMENSIONS."""
        dims = [d for d in WINDOW_DIMENSIONS if d in self.group_by or d in self.filters]
        return dims[0] if dims else "total"


@dataclass(frozen=True)
class Observation:
    """A rule whose condition holds for one label set, with the value that broke it."""

    rule: Rule
    labels: Mapping[str, str]
    value: float
    threshold: float
    at: float

    @property
    def fingerprint(self) -> str:
        """Return the stable id of (rule, label values): 16 hex digits."""
        return fingerprint(self.rule.name, self.labels)

    def document(self) -> dict[str, Any]:
        """Return the JSON-ready alert (without status and times, which the state adds)."""
        return {
            "fingerprint": self.fingerprint,
            "rule": self.rule.name,
            "kind": self.rule.kind,
            "severity": self.rule.severity,
            "summary": describe(self),
            "labels": dict(self.labels),
            "values": {"value": self.value},
            "thresholds": {"threshold": self.threshold},
        }


def fingerprint(rule_name: str, labels: Mapping[str, str]) -> str:
    """Return the fingerprint of a rule name and label set (order-independent)."""
    text = json.dumps([rule_name, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe(obs: Observation) -> str:
    """Return a one-line human summary of an observation (the rule's summary if it has one)."""
    rule = obs.rule
    if rule.summary:
        return rule.summary
    where = ", ".join(f"{k}={v}" for k, v in sorted(obs.labels.items())) or "all calls"
    texts = {
        "cost_above": f"a call cost ${obs.value:.4f} (> ${obs.threshold:g})",
        "latency_above": f"a call took {obs.value:.2f} s (> {obs.threshold:g} s)",
        "memory_above": f"a call peaked at {obs.value:.0f} MB (> {obs.threshold:g} MB)",
        "error": "a call failed",
        "breaker_open": "a circuit breaker opened",
        "daily_cost_above": f"today's cost is ${obs.value:.2f} (> ${obs.threshold:g})",
        "monthly_budget": f"{obs.value:.0f}% of the ${rule.budget_usd:g} monthly budget spent",
        "projected_month_end_above": f"month-end spend projected at ${obs.value:.2f} "
        f"(budget ${obs.threshold:g})",
        "error_rate_above": f"error rate {obs.value:.1f}% (> {obs.threshold:g}%)",
        "p95_latency_above": f"p95 latency {obs.value:.2f} s (> {obs.threshold:g} s)",
        "anomaly": f"{rule.metric} is {obs.value:.1f}x its baseline (> {obs.threshold:g}x)",
    }
    return f"{texts.get(rule.kind, rule.kind)} [{where}]"
