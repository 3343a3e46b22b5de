"""The ``otel`` worker's processor: call events and rollups as OpenTelemetry GenAI metrics (and,
optionally, one span per call event), exported over OTLP/HTTP before the unit commits.

Totals are exact: token usage, cost, calls and errors come from the rollups. Durations and time
to first token come from the call events, each counted with its weight ``1/sample_rate``
(rounded per bucket: the OTLP counts are integers). Every export carries one unit's delta
(DELTA temporality), so the receiver adds them up. ``writes()`` exports and raises
:class:`ExportError` (a ConnectionError) when the receiver refuses or is down: the runtime keeps
the unit in hand and retries, so nothing is lost, and the entries are acknowledged only after a
successful export. At-least-once: a crash between the export and the commit, or a unit rebuilt
because a reclaimer took some of its entries, sends that unit's numbers again.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Final

from llmtap import events, keys
from llmtap.connectors.otel_export import (
    DURATION_BOUNDS,
    TOKEN_TYPES,
    TTFT_BOUNDS,
    Attrs,
    Folded,
    Hist,
    OtelConfig,
    export,
)
from llmtap.consumers.runtime.commit import Writes

OPERATION: Final = "chat"


class OtelProcessor:
    """Folds a unit's events into GenAI metrics and exports them in ``writes()``."""

    group = keys.GROUP_OTEL
    wants_calls = True
    wants_rollups = True

    def __init__(self, config: OtelConfig) -> None:
        self.config = config
        self.clear()

    def clear(self) -> None:
        """Forget everything folded."""
        self.counts: defaultdict[tuple[str, Attrs], int] = defaultdict(int)
        self.durations: defaultdict[Attrs, Hist] = defaultdict(Hist)
        self.ttfts: defaultdict[Attrs, Hist] = defaultdict(Hist)
        self.calls: list[events.CallEvent] = []
        self.since: float = math.inf

    def add_call(self, event: events.CallEvent) -> None:
        """Count one call event's duration and TTFT with its weight; keep it for a span."""
        weight = 1.0 / event.sample_rate if event.sample_rate > 0 else 1.0
        attrs = _attrs(event.backend, event.model_name, None)
        if not event.success:
            attrs = (*attrs, ("error.type", event.error_type or "error"))
        self.durations[attrs].add(event.latency, weight, DURATION_BOUNDS)
        if event.ttft is not None:
            self.ttfts[attrs].add(event.ttft, weight, TTFT_BOUNDS)
        self.since = min(self.since, event.start_time)
        if self.config.spans:
            self.calls.append(event)

    def add_rollup(self, event: events.RollupEvent) -> None:
        """Add one rollup's exact calls, errors, tokens and cost."""
        self.since = min(self.since, event.window_start)
        for row in event.rows:
            attrs = _attrs(row.backend, row.model, row.tenant)
            self.counts["calls", attrs] += row.calls
            self.counts["errors", attrs] += row.errors
            self.counts["cost", attrs] += row.cost_nanousd
            for token in TOKEN_TYPES:
                self.counts[f"token:{token}", attrs] += getattr(row, f"{token}_tokens")

    def folded(self) -> Folded:
        """Return what was folded, for the exporter."""
        return Folded(
            dict(self.counts), dict(self.durations), dict(self.ttfts), self.calls, self.since
        )

    def writes(self) -> Writes:
        """Export what was folded (raising ExportError if the receiver does not take it) and
        return no Redis writes: the commit only acknowledges the entries."""
        if self.counts or self.durations or self.calls:
            export(self.config, self.folded(), time.time())
        return Writes()


def _attrs(backend: str, model: str, tenant: str | None) -> Attrs:
    attrs = [
        ("gen_ai.operation.name", OPERATION),
        ("gen_ai.provider.name", backend),
        ("gen_ai.request.model", model),
    ]
    if tenant:
        attrs.append(("llmtap.tenant", tenant))
    return tuple(attrs)
