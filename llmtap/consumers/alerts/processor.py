"""The alerts worker's consumer-group processor: per-call rules on the events stream.

Each call event that breaks a per-call rule becomes an alert step committed with the event's
XACK (the Lua step of :mod:`.state`), so each event alerts once whatever the replicas or
crashes. Windowed rules and resolution run on the tick, in :mod:`.evaluator`.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmtap import events, keys
from llmtap.analyzers.rules import Observation, Rule, evaluate_call
from llmtap.consumers.alerts.state import Outbox, observed
from llmtap.consumers.runtime.commit import ScriptPart, Writes


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
