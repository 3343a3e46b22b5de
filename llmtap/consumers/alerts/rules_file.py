"""The alert rules file on disk: reading it, and the rules in force (defaults plus the file's).

The parsing is pure and lives in :mod:`llmtap.analyzers.rules.parse`; this module owns the I/O.
"""

from __future__ import annotations

from llmtap.analyzers.rules import Rule, default_rules, parse_rules
from llmtap.settings import Settings


def read_rules_text(path: str) -> str:
    """Return the text of the rules file at ``path``; raise OSError when it cannot be read."""
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def load_rules(path: str | None, settings: Settings) -> list[Rule]:
    """Return the default rules from ``settings`` followed by the rules of the file at ``path``.

    A file rule with a default rule's name replaces it. Raises RuleError (bad file) or
    OSError (unreadable file).
    """
    rules = {rule.name: rule for rule in default_rules(settings)}
    if path:
        rules.update((rule.name, rule) for rule in parse_rules(read_rules_text(path), path))
    return list(rules.values())
