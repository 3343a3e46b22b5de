"""The alerts worker's consumer-group processor: per-call rules on the events stream.

Each call event that breaks a per-call rule becomes an alert step committed with the event's
XACK (the Lua step of :mod:`.state`), so each event alerts once whatever the replicas or
crashes. Windowed rules and resolution run on the tick, in :mod:`.evaluator`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Final

from llmtap import events, keys
from llmtap.analyzers.rules import Observation, Rule, RuleError, evaluate_call
from llmtap.consumers.alerts.rules_file import load_rules
from llmtap.consumers.alerts.state import Outbox, observed
from llmtap.consumers.runtime.commit import ScriptPart, Writes
from llmtap.settings import Settings, SettingsError

RULES_ENV: Final = "LLMTAP_ALERT_RULES"


@functools.lru_cache(maxsize=4)
def _cached_rules(path: str | None, mtime: float, settings: Settings) -> tuple[Rule, ...]:
    return tuple(load_rules(path, settings))


def rules_from_env(environ: Mapping[str, str] | None = None) -> list[Rule]:
    """Return the default rules plus those of ``LLMTAP_ALERT_RULES`` (read again if it changed).

    Raises SettingsError naming the file, the line and the reason for a bad rules file.
    """
    env = os.environ if environ is None else environ
    path = env.get(RULES_ENV) or None
    try:
        mtime = os.stat(path).st_mtime if path else 0.0
        return list(_cached_rules(path, mtime, Settings.from_env(env)))
    except (RuleError, OSError) as exc:
        raise SettingsError(f"{RULES_ENV}: {exc}") from None


class AlertsProcessor:
    """Folds call events into alert steps for the per-call rules (see the module docstring)."""

    group = keys.GROUP_ALERTS
    wants_calls = True
    wants_rollups = False
    # The alert step runs inside the consumer's commit script, so a notification is enqueued
    # exactly once with the XACK of the event that caused it.
    script_parts = (
        ScriptPart.from_resource(
            "llmtap.consumers.alerts", "lua/alert_step.lua", field="alerts", function="alert_step"
        ),
    )

    def __init__(self, rules: Sequence[Rule], outbox: Outbox | None = None) -> None:
        self.rules = [rule for rule in rules if rule.per_call]
        self.outbox = outbox or Outbox()
        # Per fingerprint the first and the last observation of the unit: enough to fire
        # (first) and to keep the alert fresh (last); the ones between change nothing.
        self._seen: dict[str, list[Observation]] = {}

    def add_call(self, event: events.CallEvent) -> None:
        """Evaluate the per-call rules on one call event."""
        for obs in evaluate_call(self.rules, event):
            held = self._seen.setdefault(obs.fingerprint, [])
            if len(held) < 2:
                held.append(obs)
            else:
                held[1] = obs

    def add_rollup(self, event: events.RollupEvent) -> None:
        """Rollups carry no per-call detail: nothing to evaluate."""

    def writes(self) -> Writes:
        """Return the alert steps of the unit, in event order per fingerprint."""
        writes = Writes()
        writes.alerts = [observed(obs, self.outbox) for held in self._seen.values() for obs in held]
        return writes

    def clear(self) -> None:
        """Forget the unit's observations."""
        self._seen.clear()
