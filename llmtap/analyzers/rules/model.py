"""Alert rules: the rules file, the default rules, and pure evaluation of calls and windows.

Nothing here touches Redis or the clock: per-call rules take a :class:`~llmtap.events.CallEvent`,
windowed rules take the aggregates the evaluator read (:class:`WindowData`) and ``now``. Each
match is an :class:`Observation` whose fingerprint is the rule name plus its label values.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import yaml

from llmtap import events
from llmtap.settings import Settings

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
DURATION_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
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


# --- loading ---------------------------------------------------------------------------


class _Lined(dict[str, Any]):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings carry line numbers."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Lined:
    loader.flatten_mapping(node)
    out = _Lined(loader.construct_pairs(node, deep=True))
    out.line = node.start_mark.line + 1
    out.key_lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_document(text: str, source: str = "<rules>") -> dict[str, Any]:
    """Parse the rules file text into a mapping; raise RuleError with the line on bad YAML."""
    try:
        doc = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise RuleError(f"{source}:{line}: invalid YAML: {exc.problem}") from None
    if doc is None:
        return _Lined()
    if not isinstance(doc, dict):
        raise RuleError(f"{source}:1: the rules file must be a mapping with a 'rules' list")
    return doc


def parse_rules(text: str, source: str = "<rules>") -> list[Rule]:
    """Return the rules of a rules file's text; raise RuleError naming the line and reason."""
    doc = parse_document(text, source)
    items = doc.get("rules") or []
    if not isinstance(items, list):
        raise RuleError(f"{source}:{_line(doc, 'rules')}: 'rules' must be a list")
    rules = [_rule(item, source) for item in items]
    _check_unique(rules, items, source)
    return rules


def load_rules(path: str | None, settings: Settings) -> list[Rule]:
    """Return the default rules from ``settings`` followed by the rules of the file at ``path``.

    A file rule with a default rule's name replaces it. Raises RuleError (bad file) or
    OSError (unreadable file).
    """
    rules = {rule.name: rule for rule in default_rules(settings)}
    if path:
        with open(path, encoding="utf-8") as handle:
            rules.update((rule.name, rule) for rule in parse_rules(handle.read(), path))
    return list(rules.values())


def default_rules(settings: Settings) -> list[Rule]:
    """Return the rules implied by CS_PROFILING_{COST,LATENCY,MEMORY}_ALERT (0 disables one)."""
    out: list[Rule] = []
    if settings.cost_alert_usd > 0:
        out.append(
            Rule("daily-cost", "daily_cost_above", settings.cost_alert_usd, repeat_interval_s=NEVER)
        )
    if settings.latency_alert_s > 0:
        out.append(
            Rule("slow-call", "latency_above", settings.latency_alert_s, group_by=CALL_LABELS[:2])
        )
    if settings.memory_alert_mb > 0:
        out.append(
            Rule("call-memory", "memory_above", settings.memory_alert_mb, group_by=CALL_LABELS[:2])
        )
    return out


def _line(mapping: Mapping[str, Any], key: str | None = None) -> int:
    if isinstance(mapping, _Lined):
        return mapping.key_lines.get(key, mapping.line) if key else mapping.line
    return 0


def _check_unique(rules: Sequence[Rule], items: Sequence[Any], source: str) -> None:
    seen: set[str] = set()
    for rule, item in zip(rules, items, strict=True):
        if rule.name in seen:
            raise RuleError(f"{source}:{_line(item)}: duplicate rule name {rule.name!r}")
        seen.add(rule.name)


_FIELDS: Final = {
    "name",
    "kind",
    "threshold",
    "severity",
    "backend",
    "model",
    "tenant",
    "tags",
    "group_by",
    "for",
    "repeat_interval",
    "resolve_after",
    "send_resolved",
    "error_type",
    "window",
    "min_calls",
    "budget_usd",
    "thresholds",
    "metric",
    "factor",
    "baseline",
    "summary",
}


def _rule(item: Any, source: str) -> Rule:
    if not isinstance(item, dict):
        raise RuleError(f"{source}:?: each rule must be a mapping")
    try:
        rule = _build(item)
        _validate(rule)
    except (ValueError, TypeError) as exc:
        key = getattr(exc, "key", None)
        raise RuleError(f"{source}:{_line(item, key)}: rule {item.get('name')!r}: {exc}") from None
    return rule


class _FieldError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def _build(item: Mapping[str, Any]) -> Rule:
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise _FieldError(unknown[0], f"unknown field; accepted: {', '.join(sorted(_FIELDS))}")
    for required in ("name", "kind"):
        if not isinstance(item.get(required), str) or not item[required]:
            raise _FieldError(required, "required, a non-empty string")
    kind = item["kind"]
    if kind not in KINDS:
        raise _FieldError("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    values: dict[str, Any] = {"name": item["name"], "kind": kind}
    if kind == "monthly_budget":  # each threshold once per month unless told otherwise
        values.update(repeat_interval_s=NEVER, send_resolved=False)
    values.update(_numbers(item))
    values.update(_labels(item))
    values.update(_durations(item))
    return Rule(**values)


def _numbers(item: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, attr in (("threshold", "threshold"), ("budget_usd", "budget_usd")):
        if key in item:
            out[attr] = _number(key, item[key])
    if "factor" in item:
        out["factor"] = _number("factor", item["factor"])
    if "min_calls" in item:
        value = item["min_calls"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _FieldError("min_calls", "a whole number >= 0")
        out["min_calls"] = value
    if "thresholds" in item:
        raw = item["thresholds"]
        if not isinstance(raw, list) or not raw:
            raise _FieldError("thresholds", "a non-empty list of percentages")
        out["thresholds_pct"] = tuple(sorted(_number("thresholds", v) for v in raw))
    if "send_resolved" in item:
        if not isinstance(item["send_resolved"], bool):
            raise _FieldError("send_resolved", "true or false")
        out["send_resolved"] = item["send_resolved"]
    return out


def _labels(item: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    filters = {k: _string(k, item[k]) for k in ("backend", "model", "tenant") if k in item}
    out["filters"] = filters
    for key in ("severity", "error_type", "metric", "summary"):
        if key in item:
            out[key] = _string(key, item[key])
    if "tags" in item:
        tags = item["tags"]
        if not isinstance(tags, dict):
            raise _FieldError("tags", "a mapping of tag name to value")
        out["tags"] = {str(k): _string("tags", v) for k, v in tags.items()}
    if "group_by" in item:
        group = item["group_by"]
        if not isinstance(group, list) or not all(isinstance(g, str) for g in group):
            raise _FieldError("group_by", "a list of label names")
        out["group_by"] = tuple(group)
    elif item["kind"] in PER_CALL_KINDS:
        out["group_by"] = ("backend", "model")
    return out


def _durations(item: Mapping[str, Any]) -> dict[str, Any]:
    names = {
        "for": "for_s",
        "repeat_interval": "repeat_interval_s",
        "resolve_after": "resolve_after_s",
        "window": "window_s",
        "baseline": "baseline_s",
    }
    return {attr: parse_duration(key, item[key]) for key, attr in names.items() if key in item}


def parse_duration(key: str, raw: Any) -> float:
    """Return seconds from ``30``, ``"30s"``, ``"5m"``, ``"4h"``, ``"1d"``, ``"250ms"`` or never.

    Raises ValueError naming ``key`` for anything else.
    """
    if raw == "never":
        return NEVER
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return _number(key, raw)
    if isinstance(raw, str):
        for unit in sorted(DURATION_UNITS, key=len, reverse=True):
            number = raw.strip().removesuffix(unit)
            if number != raw.strip():
                try:
                    return _number(key, float(number)) * DURATION_UNITS[unit]
                except ValueError:
                    break
    raise _FieldError(key, f"{raw!r} is not a duration like 30s, 5m, 4h, 1d or never")


def _number(key: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _FieldError(key, f"{raw!r} is not a number")
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise _FieldError(key, f"{raw!r} must be a finite number >= 0")
    return value


def _string(key: str, raw: Any) -> str:
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise _FieldError(key, f"{raw!r} is not a string")
    return str(raw)


def _validate(rule: Rule) -> None:
    if rule.severity not in SEVERITIES:
        raise _FieldError("severity", f"{rule.severity!r} is not one of {', '.join(SEVERITIES)}")
    if rule.per_call:
        _validate_call_labels(rule)
    else:
        _validate_window(rule)


def _validate_call_labels(rule: Rule) -> None:
    for label in rule.group_by:
        if label not in CALL_LABELS and not label.startswith("tag:"):
            accepted = ", ".join(CALL_LABELS)
            raise _FieldError("group_by", f"{label!r} is not one of {accepted} or tag:<name>")


def _validate_window(rule: Rule) -> None:
    dims = {d for d in (*rule.group_by, *rule.filters) if d}
    if rule.kind == "p95_latency_above":
        if dims - {"backend", "model"}:
            raise _FieldError("group_by", "p95 latency is kept per backend and model only")
    elif len(dims) > 1 or not dims <= set(WINDOW_DIMENSIONS):
        raise _FieldError(
            "group_by", f"windowed rules group or filter by one of {', '.join(WINDOW_DIMENSIONS)}"
        )
    if rule.tags:
        raise _FieldError("tags", "windowed rules read aggregates, which have no tags")
    if rule.kind in ("monthly_budget", "projected_month_end_above") and rule.budget_usd <= 0:
        raise _FieldError("budget_usd", "required for budget rules, a number > 0")
    if rule.kind == "anomaly" and rule.metric not in ("cost", "latency"):
        raise _FieldError("metric", "cost or latency")


# --- per-call evaluation ---------------------------------------------------------------


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
    Group values are ``total``, a dimension value, or ``backend/model`` for latency.
    """

    current: Mapping[str, Mapping[str, float]]
    baseline: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def month_span(now: float) -> tuple[float, float]:
    """Return the Unix start and end of the UTC calendar month holding ``now``."""
    day = datetime.fromtimestamp(now, UTC)
    start = datetime(day.year, day.month, 1, tzinfo=UTC).timestamp()
    length = calendar.monthrange(day.year, day.month)[1] * 86400
    return start, start + length


def window_span(rule: Rule, now: float) -> tuple[float, float]:
    """Return the ``[since, until)`` a windowed rule reads at ``now``."""
    if rule.kind == "daily_cost_above":
        return now - now % 86400, now
    if rule.kind in ("monthly_budget", "projected_month_end_above"):
        return month_span(now)[0], now
    return now - rule.window_s, now


def baseline_span(rule: Rule, now: float) -> tuple[float, float]:
    """Return the span an anomaly rule compares its window with (just before the window)."""
    since, _ = window_span(rule, now)
    return since - rule.baseline_s, since


def evaluate_window(rule: Rule, data: WindowData, now: float) -> list[Observation]:
    """Return the observations of a windowed rule over the data read for it at ``now``."""
    out: list[Observation] = []
    for group, row in sorted(data.current.items()):
        if not _group_selected(rule, group):
            continue
        labels = _group_labels(rule, group)
        for value, threshold, extra in _window_values(rule, row, data.baseline.get(group), now):
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


def _window_values(
    rule: Rule, row: Mapping[str, float], baseline: Mapping[str, float] | None, now: float
) -> list[Value]:
    kind = rule.kind
    if kind == "daily_cost_above":
        return [(row.get("cost_usd", 0.0), rule.threshold, {})]
    if kind == "monthly_budget":
        return _budget_values(rule, row.get("cost_usd", 0.0), now)
    if kind == "projected_month_end_above":
        return [(projected_month_end(row.get("cost_usd", 0.0), now), rule.budget_usd, {})]
    if kind == "error_rate_above":
        return _error_rate_values(rule, row)
    if kind == "p95_latency_above":
        return [(row.get("p95", 0.0), rule.threshold, {})]
    return _anomaly_values(rule, row, baseline)


def _budget_values(rule: Rule, spend: float, now: float) -> list[Value]:
    # ">=" semantics at a threshold: reaching 100% of the budget is crossing it.
    period = datetime.fromtimestamp(now, UTC).strftime("%Y-%m")
    pct = 100.0 * spend / rule.budget_usd
    return [
        (pct, t - 1e-9, {"threshold_pct": f"{t:g}", "period": period})
        for t in rule.thresholds_pct
        if pct >= t
    ]


def projected_month_end(spend: float, now: float) -> float:
    """Return month-end spend if the month goes on at the rate it has so far (linear)."""
    start, end = month_span(now)
    elapsed = max(now - start, 3600.0)  # an hour at least: no wild projection on the 1st
    return spend * (end - start) / elapsed


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
