"""Alert rules, pure: the model (:mod:`.model`), the rules-file parser (:mod:`.parse`) and
evaluation with silence matching (:mod:`.evaluate`), re-exported here for callers."""

from llmtap.analyzers.rules.evaluate import (
    WindowData,
    baseline_span,
    call_label,
    call_matches_filters,
    call_value,
    evaluate_call,
    evaluate_window,
    silenced,
    window_span,
)
from llmtap.analyzers.rules.model import (
    CALL_LABELS,
    KINDS,
    NEVER,
    PER_CALL_KINDS,
    SEVERITIES,
    WINDOW_DIMENSIONS,
    WINDOW_KINDS,
    Observation,
    Rule,
    RuleError,
    describe,
    fingerprint,
)
from llmtap.analyzers.rules.parse import (
    DURATION_UNITS,
    default_rules,
    parse_document,
    parse_duration,
    parse_rules,
)

__all__ = [
    "CALL_LABELS",
    "DURATION_UNITS",
    "KINDS",
    "NEVER",
    "PER_CALL_KINDS",
    "SEVERITIES",
    "WINDOW_DIMENSIONS",
    "WINDOW_KINDS",
    "Observation",
    "Rule",
    "RuleError",
    "WindowData",
    "baseline_span",
    "call_label",
    "call_matches_filters",
    "call_value",
    "default_rules",
    "describe",
    "evaluate_call",
    "evaluate_window",
    "fingerprint",
    "parse_document",
    "parse_duration",
    "parse_rules",
    "silenced",
    "window_span",
]
