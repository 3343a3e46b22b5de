"""The rules file parser: YAML with line tracking, rule fields and durations, and default rules.

Every mistake raises :class:`~.model.RuleError` naming ``file:line`` and the reason. Reading the
file is the caller's job (:mod:`llmtap.consumers.alerts.rules_file`); this module takes text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import yaml

from llmtap.analyzers.rules.model import (
    CALL_LABELS,
    KINDS,
    NEVER,
    PER_CALL_KINDS,
    SEVERITIES,
    WINDOW_DIMENSIONS,
    Rule,
    RuleError,
)
from llmtap.settings import Settings

DURATION_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


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
