"""One unit's GenAI metrics and spans as OpenTelemetry SDK data, sent with the SDK's OTLP/HTTP
exporters (``<endpoint>/v1/metrics``, ``<endpoint>/v1/traces``)."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from llmtap import events
from llmtap.settings import SettingsError, number

log = logging.getLogger(__name__)
# The GenAI convention's advisory buckets (s), doubled on up to past an hour.
DURATION_BOUNDS: Final = tuple(0.01 * 2**i for i in range(20))
TTFT_BOUNDS: Final = tuple(0.001 * 2**i for i in range(22))
TOKEN_TYPES: Final = ("input", "output", "cache_read", "cache_write", "reasoning")
Attrs = tuple[tuple[str, str], ...]


class ExportError(ConnectionError):
    """The OTLP receiver did not take an export; the unit stays in hand and is retried (the
    worker's retry line names ``service``)."""

    service = "OTLP receiver"


@dataclass(frozen=True)
class OtelConfig:
    """Where and how to export: ``endpoint`` (the OTLP/HTTP base URL), headers (vendors' API
    keys: never logged or shown in an error), timeout, spans on or off, service name."""

    endpoint: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_s: float = 10.0
    spans: bool = False
    service_name: str = "llmtap"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OtelConfig:
        """Read LLMTAP_OTLP_*; raise SettingsError naming the variable (never a header value)."""
        endpoint = environ.get("LLMTAP_OTLP_ENDPOINT", "").strip().rstrip("/")
        if not endpoint.startswith(("http://", "https://")):
            raise SettingsError(
                "LLMTAP_OTLP_ENDPOINT is required by the otel worker; accepted values: an "
                "http:// or https:// URL of an OTLP/HTTP receiver (e.g. http://localhost:4318)"
            )
        return cls(
            endpoint=endpoint,
            headers=parse_headers(environ.get("LLMTAP_OTLP_HEADERS", "")),
            timeout_s=_read(environ, "LLMTAP_OTLP_TIMEOUT_S", number(float, 0.1, 300.0), 10.0),
            spans=_read(environ, "LLMTAP_OTLP_SPANS", _flag, False),
            service_name=environ.get("LLMTAP_OTLP_SERVICE_NAME", "").strip() or "llmtap",
        )


def _flag(raw: str) -> bool:
    """Parse a boolean the way every llmtap setting does (true/false, 1/0, yes/no, on/off)."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("accepted values: true/false, 1/0, yes/no, on/off")


def _read(environ: Mapping[str, str], name: str, parse: Any, default: Any) -> Any:
    raw = environ.get(name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is invalid; {exc}") from None


def parse_headers(raw: str) -> dict[str, str]:
    """Return ``k1=v1,k2=v2`` as a dict (the OTEL_EXPORTER_OTLP_HEADERS form).

    Raises SettingsError naming LLMTAP_OTLP_HEADERS and the bad item's position, not its text.
    """
    out: dict[str, str] = {}
    for i, item in enumerate(part for part in raw.split(",") if part.strip()):
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise SettingsError(
                f"LLMTAP_OTLP_HEADERS: item {i + 1} is not name=value; accepted values: "
                "name1=value1,name2=value2 (values are not shown)"
            )
        out[name.strip()] = value.strip()
    return out


@dataclass
class Hist:
    count: float = 0.0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    buckets: list[float] = field(default_factory=list)

    def add(self, value: float, weight: float, bounds: Sequence[float]) -> None:
        if not self.buckets:
            self.buckets = [0.0] * (len(bounds) + 1)
        self.count += weight
        self.total += value * weight
        self.low, self.high = min(self.low, value), max(self.high, value)
        self.buckets[_bucket(value, bounds)] += weight


def _bucket(value: float, bounds: Sequence[float]) -> int:
    for i, bound in enumerate(bounds):
        if value <= bound:
            return i
    return len(bounds)


@dataclass
class Folded:
    """One unit, folded: exact counts by (metric, attributes), weighted duration and TTFT
    histograms by attributes, the call events to send as spans, and the earliest event time."""

    counts: dict[tuple[str, Attrs], int]
    durations: dict[Attrs, Hist]
    ttfts: dict[Attrs, Hist]
    calls: list[events.CallEvent]
    since: float


def span_ids(call_id: str) -> tuple[int, int]:
    """Return a (trace id, span id) derived from the call id: a repeated export sends the same
    span, which a tracing backend keeps once."""
    digest = hashlib.sha256(call_id.encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


SCOPE: Final = InstrumentationScope("llmtap")
DELTA: Final = AggregationTemporality.DELTA
NS: Final = 1_000_000_000
# Counters from rollups: name, unit, description, and how the stored integer becomes the value.
COUNTERS: Final = (
    ("calls", "llmtap.calls", "{call}", "LLM calls (exact, from rollups)"),
    ("errors", "llmtap.errors", "{call}", "failed LLM calls (exact, from rollups)"),
)


def export(config: OtelConfig, folded: Folded, now: float) -> None:
    """Send the folded unit; raise ExportError when the receiver does not take it."""
    start = int((folded.since if math.isfinite(folded.since) else now) * NS)
    end = max(int(now * NS), start)
    resource = Resource.create({"service.name": config.service_name})
    data = MetricsData(
        [ResourceMetrics(resource, [ScopeMetrics(SCOPE, metrics(folded, start, end), "")], "")]
    )
    exporter = OTLPMetricExporter(
        endpoint=f"{config.endpoint}/v1/metrics",
        headers=dict(config.headers),
        timeout=config.timeout_s,
    )
    try:
        result = exporter.export(data, timeout_millis=config.timeout_s * 1000)
    finally:
        exporter.shutdown()
    if result is not MetricExportResult.SUCCESS:
        raise ExportError(f"OTLP metrics export to {config.endpoint} failed; retrying the unit")
    if folded.calls:
        _export_spans(config, resource, folded.calls)


def metrics(folded: Folded, start: int, end: int) -> list[Metric]:
    """Return the unit's metrics: token usage, cost, calls and errors (exact), duration and
    TTFT histograms (weighted)."""
    out = [_token_usage(folded, start, end), _sum(folded, "cost", "gen_ai.usage.cost", "USD",
           "estimated cost of LLM calls (exact, from rollups)", start, end, 1e-9)]  # fmt: skip
    out += [_sum(folded, key, name, unit, doc, start, end, 1) for key, name, unit, doc in COUNTERS]
    out.append(_histogram("gen_ai.client.operation.duration", "s", "GenAI operation duration",
                          folded.durations, DURATION_BOUNDS, start, end))  # fmt: skip
    out.append(_histogram("gen_ai.client.operation.time_to_first_chunk", "s",
                          "time to the first chunk of a streamed response",
                          folded.ttfts, TTFT_BOUNDS, start, end))  # fmt: skip
    return [m for m in out if m.data.data_points]


def _token_usage(folded: Folded, start: int, end: int) -> Metric:
    """``gen_ai.client.token.usage``: per attributes and token type, count = calls and sum =
    tokens (exact totals; one bucket, since rollups carry no per-call distribution)."""
    points = []
    for (key, attrs), tokens in sorted(folded.counts.items()):
        if not key.startswith("token:"):
            continue
        calls = folded.counts.get(("calls", attrs), 0)
        token = key.removeprefix("token:")
        attributes = {**dict(attrs), "gen_ai.token.type": token}
        points.append(HistogramDataPoint(attributes, start, end, calls, tokens, [calls], [], 0, 0))
    hist = Histogram(points, DELTA)
    return Metric("gen_ai.client.token.usage", "tokens used per call", "{token}", hist)


def _sum(
    folded: Folded,
    key: str,
    name: str,
    unit: str,
    doc: str,
    start: int,
    end: int,
    scale: float,
) -> Metric:
    points = [
        NumberDataPoint(dict(attrs), start, end, value * scale if scale != 1 else value)
        for (found, attrs), value in sorted(folded.counts.items())
        if found == key
    ]
    return Metric(name, doc, unit, Sum(points, DELTA, True))


def _histogram(
    name: str,
    unit: str,
    doc: str,
    hists: dict[Attrs, Hist],
    bounds: tuple[float, ...],
    start: int,
    end: int,
) -> Metric:
    points = []
    for attrs, h in sorted(hists.items()):
        counts = [round(c) for c in h.buckets]
        points.append(
            HistogramDataPoint(
                dict(attrs), start, end, sum(counts), h.total, counts, list(bounds), h.low, h.high
            )
        )
    return Metric(name, doc, unit, Histogram(points, DELTA))


def _export_spans(config: OtelConfig, resource: Resource, calls: list[events.CallEvent]) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"{config.endpoint}/v1/traces",
        headers=dict(config.headers),
        timeout=config.timeout_s,
    )
    try:
        result = exporter.export([span(call, resource) for call in calls])
    finally:
        exporter.shutdown()  # type: ignore[no-untyped-call]
    if result is not SpanExportResult.SUCCESS:
        raise ExportError(f"OTLP span export to {config.endpoint} failed; retrying the unit")


def span(call: events.CallEvent, resource: Resource) -> ReadableSpan:
    """Return the client span of one call event, with the GenAI attributes."""
    trace_id, span_id = span_ids(call.call_id)
    attributes: dict[str, str | int | float] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": call.backend,
        "gen_ai.request.model": call.model_name,
        "llmtap.sample_rate": call.sample_rate,
        "llmtap.call_id": call.call_id,
    }
    for token in TOKEN_TYPES:
        count = getattr(call, f"{token}_tokens", None)
        if count is not None:
            name = {
                "cache_read": "cache_read.input_tokens",
                "cache_write": "cache_creation.input_tokens",
            }
            attributes[f"gen_ai.usage.{name.get(token, token + '_tokens')}"] = count
    if call.estimated_cost_usd is not None:
        attributes["gen_ai.usage.cost"] = call.estimated_cost_usd
    if not call.success:
        attributes["error.type"] = call.error_type or "error"
    context = SpanContext(
        trace_id, span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    return ReadableSpan(
        name=f"chat {call.model_name}",
        context=context,
        resource=resource,
        attributes=attributes,
        kind=SpanKind.CLIENT,
        status=Status(StatusCode.OK if call.success else StatusCode.ERROR),
        start_time=int(call.start_time * NS),
        end_time=int(call.end_time * NS),
        instrumentation_scope=SCOPE,
    )
