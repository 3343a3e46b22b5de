"""The alert rules file on disk: the defaults plus the file's rules."""

from __future__ import annotations

from typing import Any

from llmtap.consumers.alerts.rules_file import load_rules
from llmtap.settings import Settings


def test_a_file_rule_replaces_a_default_of_the_same_name(tmp_path: Any) -> None:
    """load_rules keeps the defaults and lets the file override one by name."""
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {name: slow-call, kind: latency_above, threshold: 9}\n")
    loaded = {r.name: r for r in load_rules(str(path), Settings())}
    assert loaded["slow-call"].threshold == 9 and "daily-cost" in loaded
