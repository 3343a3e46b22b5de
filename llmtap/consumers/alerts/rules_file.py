"""The alert rules file on disk: reading it, and the rules in force (defaults plus the file's).

The parsing is pure and lives in :mod:`llmtap.analyzers.rules.parse`; this module owns the I/O.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Final

from llmtap.analyzers.rules import Rule, RuleError, default_rules, parse_rules
from llmtap.settings import Settings, SettingsError, environ_or_process

RULES_ENV: Final = "LLMTAP_ALERT_RULES"


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


def rules_from_env(
    environ: Mapping[str, str] | None = None, settings: Settings | None = None
) -> list[Rule]:
    """Return the default rules (from ``settings``, else the environment's) plus those of
    ``LLMTAP_ALERT_RULES``, read again only when the file's mtime changes.

    Raises SettingsError naming the file, the line and the reason for a bad rules file.
    """
    env = environ_or_process(environ)
    path = env.get(RULES_ENV) or None
    try:
        mtime = os.stat(path).st_mtime if path else 0.0
        return list(_cached_rules(path, mtime, settings or Settings.from_env(env)))
    except (RuleError, OSError) as exc:
        raise SettingsError(f"{RULES_ENV}: {exc}") from None


@functools.lru_cache(maxsize=4)
def _cached_rules(path: str | None, mtime: float, settings: Settings) -> tuple[Rule, ...]:
    return tuple(load_rules(path, settings))
