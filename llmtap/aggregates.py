"""The hash-field codec of the workers' aggregates: how every field (and set member) of the cost,
usage, latency, session, call-detail, top-calls and producer keys is named, joined and parsed.

Workers encode with these functions and the read side decodes with them, so each format has one
owner (key names live in :mod:`llmtap.keys`; layout version ``keys.LAYOUT_VERSION``).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from llmtap import events

Raw = bytes | str

NANO: Final = 1_000_000_000

# --- cost and usage hashes -------------------------------------------------------------------
# Cost hash: field "<dimension>", value integer nano-USD. Usage hash: field
# "<dimension>|<metric>", value an integer. A dimension is "total" or "<kind>:<value>".

TOTAL: Final = "total"
DIMENSION_KINDS: Final = ("backend", "model", "tenant", "session")
DIMENSIONS: Final = (TOTAL, *DIMENSION_KINDS)
# The integer metrics of a rollup row, as the usage hashes name them.
ROLLUP_METRICS: Final = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "unpriced_calls",
)
# Call events without a price (sampled, so not exact), counted beside the rollup metrics.
UNPRICED_EVENTS: Final = "unpriced_events"
USAGE_METRICS: Final = (*ROLLUP_METRICS, UNPRICED_EVENTS)
_USAGE_SEP: Final = "|"


def text(value: Raw) -> str:
    """Return a field name or value as a string (redis-py returns bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def usd(nano: int) -> float:
    """Return integer nano-USD as USD."""
    return nano / NANO


def dimension(kind: str, value: str) -> str:
    """Return the dimension field of one value of ``kind``: ``model:gpt-4o``."""
    return f"{kind}:{value}"


def dimensions(backend: str, model: str, tenant: str | None, session: str | None) -> list[str]:
    """Return the dimension names a row counts under (empty tenant/session are skipped)."""
    dims = [TOTAL, dimension("backend", backend), dimension("model", model)]
    if tenant:
        dims.append(dimension("tenant", tenant))
    if session:
        dims.append(dimension("session", session))
    return dims


def error_dimensions(backend: str, model: str, tenant: str | None) -> list[str]:
    """Return the dimensions a failed call event counts under in the errors hash (no session:
    error types per session would multiply the fields for little use)."""
    dims = [TOTAL, dimension("backend", backend), dimension("model", model)]
    if tenant:
        dims.append(dimension("tenant", tenant))
    return dims


UNKNOWN_ERROR: Final = "unknown"  # the error type of a failed call event that names none


def split_dimension(dim: str) -> tuple[str, str]:
    """Return (kind, value) of a dimension field; ``total`` gives ``("total", "total")``."""
    if dim == TOTAL:
        return TOTAL, TOTAL
    kind, _, value = dim.partition(":")
    return kind, value


def usage_field(dim: str, metric: str) -> str:
    """Return the usage-hash field of one metric of one dimension: ``total|calls``."""
    return f"{dim}{_USAGE_SEP}{metric}"


def split_usage_field(name: str) -> tuple[str, str]:
    """Return (dimension, metric) of a usage-hash field (the metric follows the last ``|``)."""
    dim, _, metric = name.rpartition(_USAGE_SEP)
    return dim, metric


def decode_counts(reply: Mapping[Raw, Raw]) -> dict[str, int]:
    """Return a cost or usage hash as field -> integer."""
    if reply and all(type(name) is bytes for name in reply):
        # The read side's replies: C-level maps (int() parses bytes too), a third of the time
        # of a per-field text() call on the hashes of a 24 h read.
        names = cast(Iterable[bytes], reply)
        return dict(zip(map(bytes.decode, names), map(int, reply.values()), strict=True))
    return {text(name): int(value) for name, value in reply.items()}


# --- latency hashes and packed sketches ------------------------------------------------------
# Per timing: "<timing>:n" (events), "<timing>:w" (weighted count), "<timing>:sum" (weighted
# seconds), "<timing>:min", "<timing>:max"; output tokens/s as "tps:n", "tps:w", "tps:sum". The
# index set holds JSON [backend, model]. Each timing's sketch is one more field,
# "<timing>:sketch", a packed sketch in the format below (layout 2 had a field per bin).
#
# A packed sketch is little-endian float64s: [lo, zero-bin weight, weight of bin lo, weight of
# bin lo + 1, ...]: ``lo`` is the lowest log bin index stored (a whole number), the zero bin's
# weight has its own slot, and the log bins follow densely (a bin never written weighs 0). The
# commit script adds to it (llmtap/consumers/runtime/lua/commit.lua) with the same double
# additions a field per bin had, so the weights are the same floats.

TIMINGS: Final = ("latency", "network", "processing", "ttft")
ZERO_BIN: Final = -(2**31)  # the bin of exactly 0: analyzers.sketch.ZERO_INDEX
TPS: Final = "tps"
SKETCH_DTYPE: Final = "<f8"
SKETCH_HEADER: Final = 2  # float64s before the log bins: lo, zero-bin weight


def timing_field(timing: str, stat: str) -> str:
    """Return the latency-hash field of one statistic of ``timing``."""
    return f"{timing}:{stat}"


SKETCH_STAT: Final = "sketch"


def sketch_field(metric: str) -> str:
    """Return the hash field holding ``metric``'s packed sketch: ``<metric>:sketch``."""
    return timing_field(metric, SKETCH_STAT)


def split_sketches(
    reply: Mapping[Raw, Raw], metrics: Sequence[str]
) -> tuple[dict[str, str], dict[str, bytes]]:
    """Return a hash's text fields without its packed sketches, and ``metrics``' packed
    sketches by metric (absent ones left out)."""
    names = {sketch_field(m).encode(): m for m in metrics}
    fields: dict[str, str] = {}
    packed: dict[str, bytes] = {}
    for name, value in reply.items():
        raw = name.encode() if isinstance(name, str) else name
        if raw in names:
            packed[names[raw]] = value.encode() if isinstance(value, str) else value
        elif not raw.endswith(b":" + SKETCH_STAT.encode()):
            fields[text(name)] = text(value)
    return fields, packed


@dataclass
class TimingFields:
    """One timing of one latency hash and its sketch: what the latency worker writes and
    readers decode."""

    n: int
    w: float
    total: float
    low: float
    high: float
    bins: dict[int, float]


def decode_timing(
    fields: Mapping[str, str], timing: str, packed: bytes | None = None
) -> TimingFields:
    """Return ``timing``'s count, weight, sum, extremes (±inf when absent) from the hash
    ``fields`` and its sketch bins from ``packed`` (see :func:`decode_sketch`)."""
    prefix = timing_field(timing, "")
    return TimingFields(
        n=int(fields.get(f"{prefix}n", 0)),
        w=float(fields.get(f"{prefix}w", 0.0)),
        total=float(fields.get(f"{prefix}sum", 0.0)),
        low=float(fields.get(f"{prefix}min", math.inf)),
        high=float(fields.get(f"{prefix}max", -math.inf)),
        bins=decode_sketch(packed),
    )


def decode_sketch(packed: bytes | None) -> dict[int, float]:
    """Return the bins of a packed sketch (bin index -> weight, bins of weight 0 left out);
    ``{}`` for None (no such key). Raises ValueError for bytes that are not a packed sketch."""
    if not packed:
        return {}
    values = _sketch_values(packed)
    lo = int(values[0])
    out = {ZERO_BIN: float(values[1])} if values[1] else {}
    for offset, weight in enumerate(values[SKETCH_HEADER:].tolist()):
        if weight:
            out[lo + offset] = weight
    return out


def encode_sketch(bins: Mapping[int, float]) -> bytes:
    """Return the packed sketch holding ``bins`` (what the commit script writes for them)."""
    logs = sorted(i for i, w in bins.items() if i != ZERO_BIN and w)
    lo = logs[0] if logs else 0
    dense = np.zeros(SKETCH_HEADER + (logs[-1] - lo + 1 if logs else 0), dtype=SKETCH_DTYPE)
    dense[0], dense[1] = lo, bins.get(ZERO_BIN, 0.0)
    for i in logs:
        dense[SKETCH_HEADER + i - lo] = bins[i]
    return dense.tobytes()


def _sketch_values(packed: bytes) -> npt.NDArray[np.float64]:
    if len(packed) % 8 or len(packed) < 8 * SKETCH_HEADER:
        raise ValueError(f"a packed sketch of {len(packed)} bytes: not float64s with a header")
    values: npt.NDArray[np.float64] = np.frombuffer(packed, dtype=SKETCH_DTYPE)
    return values


def decode_tps(fields: Mapping[str, str]) -> tuple[float, float]:
    """Return the weighted sum and weighted count of output tokens/s in a latency hash."""
    return (
        float(fields.get(timing_field(TPS, "sum"), 0.0)),
        float(fields.get(timing_field(TPS, "w"), 0.0)),
    )


TIMING_STATS: Final = ("n", "w", "sum", "min", "max")
TPS_STATS: Final = ("n", "w", "sum")


def parse_latency_field(name: Raw) -> tuple[str, str] | None:
    """Return (timing or ``tps``, statistic name) of a latency-hash field, None for a field
    this layout does not define (:func:`decode_timing` ignores those too)."""
    timing, sep, suffix = text(name).partition(":")
    if not sep:
        return None
    if timing == TPS:
        return (TPS, suffix) if suffix in TPS_STATS else None
    if timing not in TIMINGS:
        return None
    return (timing, suffix) if suffix in TIMING_STATS else None


def latency_member(backend: str, model: str) -> str:
    """Return the latency-index member naming one (backend, model)."""
    return json.dumps([backend, model])


@functools.lru_cache(maxsize=4096)
def decode_latency_member(member: Raw) -> tuple[str, str]:
    """Return the (backend, model) of a latency-index member (remembered: a day's read meets the
    same few pairs in every bucket, about 500 times in a report)."""
    backend, model = json.loads(member)
    return str(backend), str(model)


# --- sessions: summary hash and timeline -----------------------------------------------------
# Exact counters from rollups (SESSION_METRICS), and from call events "events", "failed_events",
# "<kind>:<value>" event counts (SESSION_USAGE_KINDS), "latency_sum", "first_seen", "last_seen".

SESSION_METRICS: Final = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
    "cost_nanousd",
    "unpriced_calls",
)
SESSION_USAGE_KINDS: Final = ("backend", "model", "thread")
NO_THREAD: Final = "-"  # the thread field of a call event without a thread name


def session_usage_field(kind: str, value: str) -> str:
    """Return the session-hash field counting events of one backend, model or thread."""
    return f"{kind}:{value}"


@dataclass
class SessionFields:
    """A session summary hash, decoded (zero / None where a field is absent)."""

    counts: dict[str, int]
    events: int
    failed_events: int
    latency_sum: float
    first_seen: float | None
    last_seen: float | None
    usage: dict[str, dict[str, int]] = field(default_factory=dict)


def decode_session(reply: Mapping[Raw, Raw]) -> SessionFields:
    """Return the summary hash of a session as numbers; ``usage`` maps kind -> value -> events."""
    fields = {text(k): text(v) for k, v in reply.items()}
    first, last = fields.get("first_seen"), fields.get("last_seen")
    return SessionFields(
        counts={m: int(fields.get(m, 0)) for m in SESSION_METRICS},
        events=int(fields.get("events", 0)),
        failed_events=int(fields.get("failed_events", 0)),
        latency_sum=float(fields.get("latency_sum", 0.0)),
        first_seen=float(first) if first else None,
        last_seen=float(last) if last else None,
        usage={kind: _prefixed(fields, f"{kind}:") for kind in SESSION_USAGE_KINDS},
    )


def _prefixed(fields: Mapping[str, str], prefix: str) -> dict[str, int]:
    return {
        k.removeprefix(prefix): int(v) for k, v in sorted(fields.items()) if k.startswith(prefix)
    }


def timeline_member(call: events.CallEvent) -> str:
    """Return the timeline member describing one call event (compact, deterministic JSON)."""
    detail = {
        "call_id": call.call_id,
        "timestamp": call.start_time,
        "thread_name": call.thread_name,
        "backend": call.backend,
        "model": call.model_name,
        "cost": call.estimated_cost_usd,
        "latency": call.latency,
        "success": call.success,
        "error_type": call.error_type,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
    }
    return _compact(detail)


def top_member(call: events.CallEvent) -> str:
    """Return the top-calls member describing one expensive call (compact, deterministic JSON)."""
    detail = {
        "call_id": call.call_id,
        "backend": call.backend,
        "model": call.model_name,
        "session": call.session_id,
        "tenant": call.tenant,
        "cost_usd": call.estimated_cost_usd,
        "start_time": call.start_time,
    }
    return _compact(detail)


def decode_member(member: Raw) -> dict[str, Any]:
    """Return the detail of a timeline or top-calls member."""
    detail: dict[str, Any] = json.loads(member)
    return detail


def _compact(detail: Mapping[str, Any]) -> str:
    return json.dumps(detail, separators=(",", ":"), sort_keys=True)


# --- call details (one hash per UTC day) -----------------------------------------------------
# "model:<model>|<metric>" (w, retries_w, failed_w, failed_cost_w, max_input_tokens) and
# "prompt:<hash>|<metric>" (n, w, cost_w). Metrics named max* are maxima, the rest sums.


def detail_field(kind: str, name: str, metric: str) -> str:
    """Return the call-detail field of one metric of a model or prompt hash."""
    return usage_field(dimension(kind, name), metric)


@dataclass
class CallDetails:
    """Call-detail hashes merged: per model and per prompt hash, metric -> value."""

    models: dict[str, dict[str, float]] = field(default_factory=dict)
    prompts: dict[str, dict[str, float]] = field(default_factory=dict)


def merge_call_details(replies: Iterable[Mapping[Raw, Raw]]) -> CallDetails:
    """Merge call-detail hashes: sum each metric, except maxima (``max*``), which take the max."""
    out = CallDetails()
    groups = {"model": out.models, "prompt": out.prompts}
    for reply in replies:
        for name, value in reply.items():
            subject, metric = split_usage_field(text(name))
            kind, key = split_dimension(subject)
            if kind not in groups:
                continue
            row = groups[kind].setdefault(key, {})
            number = float(value)
            old = row.get(metric, 0.0)
            row[metric] = max(old, number) if metric.startswith("max") else old + number
    return out


# --- producer statistics hash ----------------------------------------------------------------

PRODUCER_STATS: Final = ("total_calls", "profiled_calls", "dropped_events", "unpriced_calls")
# The settings a producer reports it runs with (absent when it does not send them).
PRODUCER_SETTINGS: Final = ("enabled", "level", "sampling_rate")


def producer_fields(rollup: events.RollupEvent) -> dict[str, str]:
    """Return the producer-hash fields a rollup sets: its statistics, the settings it reports
    (``enabled`` as ``true``/``false``; those it does not send are left out) and ``window_end``.
    """
    stats = rollup.stats
    fields = {
        name: _field_text(value)
        for name in stats.__struct_fields__
        if (value := getattr(stats, name)) is not None
    }
    fields["window_end"] = repr(rollup.window_end)
    return fields


def _field_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def decode_producer_settings(values: Sequence[Raw | None]) -> dict[str, Any]:
    """Return the PRODUCER_SETTINGS of one producer hash from HMGET values (absent: None)."""
    enabled, level, rate = (None if v is None else text(v) for v in values)
    return {
        "enabled": None if enabled is None else enabled == "true",
        "level": level,
        "sampling_rate": None if rate is None else float(rate),
    }


def decode_producer_stats(values: Sequence[Raw | None]) -> dict[str, int]:
    """Return the PRODUCER_STATS of one producer hash from HMGET values (absent: 0)."""
    return {stat: int(value or 0) for stat, value in zip(PRODUCER_STATS, values, strict=True)}
