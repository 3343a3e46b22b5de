"""The Prometheus collector of ``/metrics``: every family built at scrape time from Redis.

No state is kept between scrapes, so any number of replicas give the same answer. Counters
cover the current UTC month and reset at 00:00 UTC on the 1st (see :mod:`llmtap.read.metrics`);
latency summaries carry the month's weighted count and sum and the p50/p90/p95/p99 of a recent
window, merged from the sketches. Models, providers and tenants beyond the configured caps
share the label ``other``. Names follow the OpenTelemetry GenAI conventions where one exists
(``gen_ai_client_operation_duration_seconds``, ``gen_ai_client_token_usage``); cost is
``gen_ai_usage_cost_total`` in USD, as OpenLIT's and LiteLLM's exporters name it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from llmtap import aggregates, keys
from llmtap.analyzers import sketch
from llmtap.connectors.labels import OTHER, capped
from llmtap.read import alerts, cost, status
from llmtap.read.metrics import Pair, Snapshot, live_workers, snapshot
from llmtap.settings import Settings

Family = CounterMetricFamily | GaugeMetricFamily | SummaryMetricFamily
QUANTILES: Final = (0.5, 0.9, 0.95, 0.99)
MODEL: Final = "gen_ai_request_model"
PROVIDER: Final = "gen_ai_provider_name"
TOKEN_TYPE: Final = "gen_ai_token_type"
TOKEN_TYPES: Final = ("input", "output", "cache_read", "cache_write", "reasoning")
ERROR_TYPE: Final = "error_type"  # OTel's error.type
MAX_ERROR_TYPES: Final = 20  # error types with a label of their own; the rest share "other"
# Per dimension kind of the aggregates: its label and the prefix of its families' names.
KINDS: Final = {
    "model": (MODEL, ""),
    "backend": (PROVIDER, "provider_"),
    "tenant": ("tenant", "tenant_"),
}
# The timings of the latency hashes, as summary families.
TIMING_FAMILIES: Final = {
    "latency": ("gen_ai_client_operation_duration_seconds", "call duration (s)"),
    "ttft": ("gen_ai_client_operation_time_to_first_chunk_seconds", "time to first token (s)"),
    "network": ("llmtap_network_time_seconds", "network part of the call duration (s)"),
    "processing": ("llmtap_processing_time_seconds", "processing part of the call duration (s)"),
}


@dataclass(frozen=True)
class MetricsConfig:
    """What the collector reports: label caps, the quantile window and the monthly budget."""

    max_models: int = 30
    max_providers: int = 20
    max_tenants: int = 20
    quantile_window_s: float = 300.0
    monthly_budget_usd: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings, budget_usd: float | None = None) -> MetricsConfig:
        """Return the configuration of the LLMTAP_METRICS_* settings and ``budget_usd``."""
        return cls(
            max_models=settings.metrics_max_models,
            max_providers=settings.metrics_max_providers,
            max_tenants=settings.metrics_max_tenants,
            quantile_window_s=settings.metrics_quantile_window_s,
            monthly_budget_usd=budget_usd,
        )


class LlmtapCollector(Collector):
    """Reads the aggregates at every ``collect()``; redis errors propagate (the route answers
    503 and Prometheus marks the target down)."""

    def __init__(
        self,
        client: redis.Redis,
        config: MetricsConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.config = config
        self.clock = clock

    def collect(self) -> Iterator[Family]:
        started = time.perf_counter()
        now = self.clock()
        snap = snapshot(self.client, now, self.config.quantile_window_s)
        caps = {
            "model": self.config.max_models,
            "backend": self.config.max_providers,
            "tenant": self.config.max_tenants,
        }
        labels = {kind: capped(_calls_by(snap, kind), limit) for kind, limit in caps.items()}
        yield from usage_families(snap, labels)
        yield from error_families(snap, labels)
        yield from latency_families(snap, labels["backend"], labels["model"])
        yield from self._cost_families(now)
        yield from self._alert_families()
        yield from pipeline_families(self.client, snap)
        took = GaugeMetricFamily(
            "llmtap_scrape_duration_seconds", "time this scrape took to read and build (s)"
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _cost_families(self, now: float) -> Iterator[Family]:
        budget = self.config.monthly_budget_usd
        projection = cost.month_projection(self.client, now, budget)
        for name, doc, value in (
            ("llmtap_cost_month_to_date_usd", "spend since 00:00 UTC on the 1st (USD)",
             projection["month_to_date_usd"]),
            ("llmtap_cost_projected_month_end_usd", "projected spend at month end (USD)",
             projection["projected_month_end_usd"]),
            ("llmtap_cost_burn_rate_usd_per_day", "current daily spend rate (USD/day)",
             projection["daily_rate_usd"]),
        ):  # fmt: skip
            yield _gauge(name, doc, value)
        if budget:
            yield _gauge("llmtap_budget_usd", "monthly budget (USD)", budget)
            used = projection["budget_used_pct"] or 0.0
            yield _gauge(
                "llmtap_budget_used_ratio", "share of the monthly budget spent", used / 100
            )

    def _alert_families(self) -> Iterator[Family]:
        counts: dict[str, dict[str, int]] = {"firing": {}, "pending": {}}
        for row in alerts.alert_states(self.client):
            by_rule = counts.get(str(row.get("status")))
            if by_rule is not None:
                rule = str(row.get("rule", ""))
                by_rule[rule] = by_rule.get(rule, 0) + 1
        for state, by_rule in counts.items():
            family = GaugeMetricFamily(
                f"llmtap_alerts_{state}", f"alerts {state} now, per rule", labels=["rule"]
            )
            for rule, n in sorted(by_rule.items()):
                family.add_metric([rule], n)
            yield family


def registry(client: redis.Redis, config: MetricsConfig) -> CollectorRegistry:
    """Return a registry holding only the llmtap collector (no process metrics: a replica's
    own numbers would differ between replicas)."""
    out = CollectorRegistry(auto_describe=False)
    out.register(LlmtapCollector(client, config))
    return out


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def _calls_by(snap: Snapshot, kind: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in snap.usage.items():
        dim, metric = aggregates.split_usage_field(name)
        found, label = aggregates.split_dimension(dim)
        if found == kind and metric == "calls":
            out[label] = value
    if kind in ("model", "backend"):  # values seen only in call events rank last
        for backend, model in snap.latency_totals:
            out.setdefault(model if kind == "model" else backend, 0.0)
    return out


def usage_families(snap: Snapshot, labels: Mapping[str, Mapping[str, str]]) -> Iterator[Family]:
    """Yield the month's calls, errors, cost and tokens per model, provider and tenant."""
    for kind, (label, prefix) in KINDS.items():
        rows = _rows(snap, kind, labels[kind])
        calls = CounterMetricFamily(
            f"llmtap_{prefix}calls", f"calls by {label} (exact)", labels=[label]
        )
        errors = CounterMetricFamily(
            f"llmtap_{prefix}errors", f"failed calls by {label}", labels=[label]
        )
        spend = CounterMetricFamily(
            "gen_ai_usage_cost" if not prefix else f"llmtap_{prefix}usage_cost",
            f"estimated cost in USD by {label} (exact sums of priced calls)",
            labels=[label],
        )
        for value, row in sorted(rows.items()):
            calls.add_metric([value], row.get("calls", 0))
            errors.add_metric([value], row.get("errors", 0))
            spend.add_metric([value], aggregates.usd(row.get("cost", 0)))
        yield from (calls, errors, spend)
        yield _tokens(kind, label, prefix, rows)


def error_families(snap: Snapshot, labels: Mapping[str, Mapping[str, str]]) -> Iterator[Family]:
    """Yield the month's failed call events by error type, per model, provider and tenant.

    Counted from call events, which keep every failed call at any sampling rate above 0 (at
    rate 0 there are none): the exact failed-call totals are the ``*errors`` families. Error
    types beyond the :data:`MAX_ERROR_TYPES` most frequent share the label ``other``."""
    weights: dict[str, float] = {}
    for name, value in snap.errors.items():
        dim, kind = aggregates.split_usage_field(name)
        if dim == aggregates.TOTAL:
            weights[kind] = value
    types = capped(weights, MAX_ERROR_TYPES)
    for kind, (label, prefix) in KINDS.items():
        family = CounterMetricFamily(
            f"llmtap_{prefix}error_events",
            f"failed call events by {label} and error type (every failed call is kept)",
            labels=[label, ERROR_TYPE],
        )
        rows: dict[tuple[str, str], int] = {}
        for name, count in snap.errors.items():
            dim, error = aggregates.split_usage_field(name)
            found, raw = aggregates.split_dimension(dim)
            if found == kind:
                at = (labels[kind].get(raw, raw), types.get(error, OTHER))
                rows[at] = rows.get(at, 0) + count
        for (subject, error), count in sorted(rows.items()):
            family.add_metric([subject, error], count)
        yield family


def _tokens(kind: str, label: str, prefix: str, rows: Mapping[str, Mapping[str, int]]) -> Family:
    doc = f"tokens by {label} and type"
    if kind == "model":  # the GenAI histogram's _count and _sum: calls and tokens
        summary = SummaryMetricFamily("gen_ai_client_token_usage", doc, labels=[label, TOKEN_TYPE])
        for value, row in sorted(rows.items()):
            for token in TOKEN_TYPES:
                summary.add_metric(
                    [value, token], row.get("calls", 0), row.get(f"{token}_tokens", 0)
                )
        return summary
    counter = CounterMetricFamily(f"llmtap_{prefix}tokens", doc, labels=[label, TOKEN_TYPE])
    for value, row in sorted(rows.items()):
        for token in TOKEN_TYPES:
            counter.add_metric([value, token], row.get(f"{token}_tokens", 0))
    return counter


def _rows(snap: Snapshot, kind: str, labels: Mapping[str, str]) -> dict[str, dict[str, int]]:
    rows: dict[str, dict[str, int]] = {}
    for name, value in snap.usage.items():
        dim, metric = aggregates.split_usage_field(name)
        found, raw = aggregates.split_dimension(dim)
        if found == kind:
            row = rows.setdefault(labels.get(raw, raw), {})
            row[metric] = row.get(metric, 0) + value
    for name, value in snap.costs.items():
        found, raw = aggregates.split_dimension(name)
        if found == kind:
            row = rows.setdefault(labels.get(raw, raw), {})
            row["cost"] = row.get("cost", 0) + value
    return rows


def latency_families(
    snap: Snapshot, providers: Mapping[str, str], models: Mapping[str, str]
) -> Iterator[Family]:
    """Yield a summary per timing and (provider, model): the month's weighted count and sum,
    and the window's quantiles (absent when the window holds no call event)."""

    def label(pair: Pair) -> Pair:
        return providers.get(pair[0], pair[0]), models.get(pair[1], pair[1])

    for timing, (name, doc) in TIMING_FAMILIES.items():
        family = SummaryMetricFamily(
            name, f"{doc}, weighted by 1/sample_rate", labels=[PROVIDER, MODEL]
        )
        totals: dict[Pair, list[float]] = {}
        for pair, row in snap.latency_totals.items():
            w, s = row[timing]
            acc = totals.setdefault(label(pair), [0.0, 0.0])
            acc[0] += w
            acc[1] += s
        bins: dict[Pair, list[dict[int, float]]] = {}
        for pair, sketches in snap.window.items():
            bins.setdefault(label(pair), []).extend(sketches[timing])
        for pair in sorted(totals.keys() | bins.keys()):
            w, s = totals.get(pair, [0.0, 0.0])
            if not w and not any(bins.get(pair, [])):
                continue
            family.add_metric(list(pair), w, s)  # type: ignore[arg-type]  # a weighted count
            _quantiles(family, pair, bins.get(pair, []))
        yield family


def _quantiles(family: SummaryMetricFamily, pair: Pair, bins: Sequence[dict[int, float]]) -> None:
    merged = sketch.merge(*bins)
    for q, value in zip(QUANTILES, sketch.quantiles(merged, QUANTILES), strict=True):
        if value is not None:
            labels = {PROVIDER: pair[0], MODEL: pair[1], "quantile": f"{q:g}"}
            family.samples.append(Sample(family.name, labels, value))


def shard_families(snap: Snapshot) -> Iterator[Family]:
    """Yield each shard's stream and dead-letter lengths and each group's lag on it (only with
    several shards; the label has at most ``LLMTAP_SHARDS`` values)."""
    length = GaugeMetricFamily(
        "llmtap_shard_stream_length", "entries in one shard's events stream", labels=["shard"]
    )
    dlq = GaugeMetricFamily(
        "llmtap_shard_dlq_length", "entries in one shard's dead-letter stream", labels=["shard"]
    )
    lag = GaugeMetricFamily(
        "llmtap_shard_consumer_lag",
        "entries of one shard not yet delivered to the group",
        labels=["group", "shard"],
    )
    for k, health in enumerate(snap.shards):
        length.add_metric([str(k)], health.stream_length)
        dlq.add_metric([str(k)], health.dlq_length)
        for group, value in health.lag.items():
            if value is not None:
                lag.add_metric([group, str(k)], value)
    yield from (length, dlq, lag)


def pipeline_families(client: redis.Redis, snap: Snapshot) -> Iterator[Family]:
    """Yield the pipeline's health: stream and dead-letter lengths, lag, pending and counters
    per group (each summed over the shards, and per shard when there are several), live
    workers per group, and the live producers' drops."""
    yield _gauge("llmtap_stream_length", "entries in the events stream", snap.stream_length)
    yield _gauge("llmtap_dlq_length", "entries in the dead-letter stream", snap.dlq_length)
    lag = GaugeMetricFamily(
        "llmtap_consumer_lag", "entries not yet delivered to the group", labels=["group"]
    )
    pending = GaugeMetricFamily(
        "llmtap_consumer_pending", "entries delivered, not acknowledged", labels=["group"]
    )
    processed = CounterMetricFamily(
        "llmtap_consumer_processed_events", "events committed by the group", labels=["group"]
    )
    dead = CounterMetricFamily(
        "llmtap_consumer_dead_letters", "events the group dead-lettered", labels=["group"]
    )
    for group, info in snap.groups.items():
        if info is not None:
            if info.get("lag") is not None:
                lag.add_metric([group], float(info["lag"]))
            pending.add_metric([group], float(info.get("pending", 0)))
        counters = snap.counters.get(group, {})
        processed.add_metric([group], counters.get("processed", 0))
        dead.add_metric([group], counters.get("dlq", 0))
    yield from (lag, pending, processed, dead)
    if snap.shards:
        yield from shard_families(snap)
    alive = GaugeMetricFamily(
        "llmtap_workers_alive", "consumers with a live heartbeat", labels=["group"]
    )
    live = live_workers(client)
    for group in sorted({*keys.WORKER_GROUPS, *live}):
        alive.add_metric([group], live.get(group, 0))
    yield alive
    stats = status.producer_statistics(client)
    yield _gauge(
        "llmtap_producers", "producers that sent a rollup in the last day", stats["producers"]
    )
    yield _gauge(
        "llmtap_producer_dropped_events",
        "events the live producers dropped since they started (falls when a producer expires)",
        stats["dropped_events"],
    )
