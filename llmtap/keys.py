"""Every Redis stream, consumer group and key name llmtap uses, with their TTLs.

The layout is a public API (users read the hashes directly); ``LAYOUT_VERSION`` changes
whenever a name or a field's meaning changes. No other module builds a key by hand.

Layout 4 added two granularities, ten minutes (``t``) and quarter days (``q``, 6 h), so a day's
range is covered by about 20 buckets instead of 80 to 140 (see llmtap.read.snapshot.cover);
``LAYOUT_TIERS_FIELD`` of the layout record says from when they are complete.

Layout 3 packed each latency sketch's bins into one field of its latency hash (was one field
per bin; see llmtap.aggregates.encode_sketch).

Layout 2 (sharding, for Redis/Valkey Cluster): every key a commit touches (the events stream, the
aggregates, dedup marks, the group counters, the DLQ, producer statistics, sessions) lives
under its shard's hash tag, ``llmtap:{s<k>}:...``, so one commit stays inside one cluster
slot; control state (runtime settings, heartbeats, alert state, silences, the notify outbox,
report locks, the layout record) lives under ``llmtap:{c}:...``. The functions and constants
below name shard 0; :func:`on_shard` moves a shard-0 name to shard ``k``. With one shard (the
default) the names are those of shard 0; tags change nothing on a single Redis.
"""

from __future__ import annotations

import re
import time
import zlib
from typing import Final

LAYOUT_VERSION: Final = 4
PREFIX: Final = "llmtap"
# SCAN pattern of every key llmtap writes (reset_profiling_metrics deletes by it).
ALL_KEYS_PATTERN: Final = f"{PREFIX}:*"

# Hash tags: a cluster hashes only the part between braces, so every key of a shard (and all
# control state) maps to one slot.
MAX_SHARDS: Final = 1024
CONTROL: Final = f"{PREFIX}:{{c}}"
SHARD0: Final = f"{PREFIX}:{{s0}}"


def shard_prefix(shard: int) -> str:
    """Return the prefix of every key of shard ``shard``: ``llmtap:{s<shard>}``.

    Raises ValueError for a shard outside ``[0, MAX_SHARDS)``.
    """
    if not 0 <= shard < MAX_SHARDS:
        raise ValueError(f"shard {shard!r} is outside [0, {MAX_SHARDS})")
    return f"{PREFIX}:{{s{shard}}}"


def on_shard(name: str, shard: int) -> str:
    """Return the shard-``shard`` name of a shard-0 key; any other name comes back unchanged
    (control keys have no shard)."""
    if shard == 0 or not name.startswith(SHARD0 + ":"):
        return name
    return shard_prefix(shard) + name[len(SHARD0) :]


def shard_of(producer_id: str, shards: int) -> int:
    """Return the shard a producer writes to: CRC-32 of its UTF-8 id, modulo ``shards``
    (stable across processes and languages, so a retried rollup meets its dedup marks)."""
    return zlib.crc32(producer_id.encode()) % shards if shards > 1 else 0


def events_stream(shard: int = 0) -> str:
    """Return the events stream of one shard."""
    return f"{shard_prefix(shard)}:events"


def dlq_stream(shard: int = 0) -> str:
    """Return the dead-letter stream of one shard."""
    return f"{shard_prefix(shard)}:dlq"


# Streams (shard 0; see events_stream / dlq_stream) and the notify outbox (control).
EVENTS: Final = f"{SHARD0}:events"
DLQ: Final = f"{SHARD0}:dlq"
NOTIFY: Final = f"{CONTROL}:notify"
# How many shards the workers use (hash: version, shards): readers merge that many; and
# since when every granularity is written (tiers_since, Unix seconds: 0 for a deployment that
# started at layout 4, the upgrade's time for one that ran layout 3 before; readers use the ten
# minute and quarter-day buckets only from then on).
LAYOUT: Final = f"{CONTROL}:layout"
LAYOUT_VERSION_FIELD: Final = "version"
LAYOUT_SHARDS_FIELD: Final = "shards"
LAYOUT_TIERS_FIELD: Final = "tiers_since"

# The single field of an events entry: one event map, or an array of them.
FIELD_EVENT: Final = b"e"
FIELD_BATCH: Final = b"b"

# Consumer groups, one per worker kind.
GROUP_COST: Final = "cost"
GROUP_LATENCY: Final = "latency"
GROUP_ALERTS: Final = "alerts"
GROUP_SESSIONS: Final = "sessions"
GROUP_NOTIFIER: Final = "notifier"
# The reports worker reads no stream; the name keys its heartbeats.
GROUP_REPORTS: Final = "reports"
# The OTLP export worker (llmtap.connectors.otel); `llmtap up` runs it only when
# LLMTAP_OTLP_ENDPOINT is set.
GROUP_OTEL: Final = "otel"
# The worker groups that read the events stream (lag, pending and counters), the ones that
# run without it (heartbeats only), and all of them, in the order status lists them.
EVENT_GROUPS: Final = (GROUP_COST, GROUP_LATENCY, GROUP_SESSIONS, GROUP_ALERTS, GROUP_OTEL)
OFF_STREAM_GROUPS: Final = (GROUP_NOTIFIER, GROUP_REPORTS)
WORKER_GROUPS: Final = (*EVENT_GROUPS, *OFF_STREAM_GROUPS)

# Runtime settings that every producer polls (a hash of setting name -> value).
RUNTIME_SETTINGS: Final = f"{CONTROL}:settings"
# Producer statistics, one hash per producer id, refreshed with every rollup.
PRODUCER_PREFIX: Final = f"{SHARD0}:producer:"
PRODUCER_TTL_S: Final = 24 * 3600

# Time granularities of the aggregates (minute, ten minutes, hour, quarter day, day) and how
# long each bucket is kept: ten-minute buckets as long as minutes, quarter days as long as hours.
GRANULARITIES: Final = ("m", "t", "h", "q", "d")
BUCKET_SECONDS: Final = {"m": 60, "t": 600, "h": 3600, "q": 6 * 3600, "d": 86400}
DEFAULT_TTL_S: Final = {
    "m": 2 * 86400,
    "t": 2 * 86400,
    "h": 35 * 86400,
    "q": 35 * 86400,
    "d": 400 * 86400,
}
# The granularities that every layout wrote (layout 3 had no "t" and no "q").
BASE_GRANULARITIES: Final = ("m", "h", "d")


def kind(name: str) -> str:
    """Return the kind of a key name: ``cost`` for ``llmtap:{s0}:cost:h:20260131T15``."""
    parts = name.split(":")
    if len(parts) > 2 and parts[1].startswith("{"):
        return parts[2]
    return parts[1] if len(parts) > 1 else name


def producer(producer_id: str) -> str:
    """Return the statistics hash of one producer."""
    return f"{PRODUCER_PREFIX}{producer_id}"


# --- Aggregates written by the workers (shard 0 of layout version 2; see docs/key-layout.md) ---

# Cost in integer nano-USD (1e-9 USD) by dimension: hash field "<dimension>", e.g. "total",
# "backend:openai", "model:gpt-4o", "tenant:acme", "session:s-1". Every field format of these
# hashes is encoded and decoded by llmtap.aggregates.
COST_PREFIX: Final = f"{SHARD0}:cost"
# Calls, errors, tokens by dimension: hash field "<dimension>|<metric>", e.g. "total|calls".
USAGE_PREFIX: Final = f"{SHARD0}:usage"
# Failed call events by error type: hash field "<dimension>|<error_type>" (dimensions total,
# backend, model, tenant), counted from call events (every failed call is kept at any sampling
# rate above 0).
ERRORS_PREFIX: Final = f"{SHARD0}:errors"
# Latency sketches and stats, one hash per (granularity, bucket, backend, model).
LATENCY_PREFIX: Final = f"{SHARD0}:lat"
# The (backend, model) pairs that have a latency hash in a bucket: a set of JSON pairs.
LATENCY_INDEX_PREFIX: Final = f"{SHARD0}:latidx"
# The most expensive call events of a UTC day: a sorted set, score USD, member JSON detail.
TOP_CALLS_PREFIX: Final = f"{SHARD0}:top"
TOP_CALLS_DEFAULT_N: Final = 100

# Consumer runtime state.
DEDUP_PREFIX: Final = f"{SHARD0}:dedup"
DEDUP_TTL_S: Final = 3 * 86400
HEARTBEAT_PREFIX: Final = f"{CONTROL}:heartbeat"
HEARTBEAT_TTL_S: Final = 15
STATS_PREFIX: Final = f"{SHARD0}:stats"
DLQ_MAXLEN: Final = 100_000

_BUCKET_FORMATS: Final = {
    "m": "%Y%m%dT%H%M",
    "t": "%Y%m%dT%H%M",
    "h": "%Y%m%dT%H",
    "q": "%Y%m%dT%H",
    "d": "%Y%m%d",
}


def bucket_start(granularity: str, ts: float) -> int:
    """Return the Unix time (s) at which the UTC bucket holding ``ts`` starts."""
    size = BUCKET_SECONDS[granularity]
    return int(ts // size) * size


def bucket(granularity: str, ts: float) -> str:
    """Return the UTC bucket name holding ``ts``: ``20260131T1530``, ``20260131T15``, ``20260131``
    (ten-minute and quarter-day buckets are named by their first minute or hour).

    Raises KeyError for a granularity not in ``GRANULARITIES``.
    """
    fmt = _BUCKET_FORMATS[granularity]
    return time.strftime(fmt, time.gmtime(bucket_start(granularity, ts)))


def cost(granularity: str, bucket_name: str) -> str:
    """Return the cost hash (nano-USD by dimension) of one bucket."""
    return f"{COST_PREFIX}:{granularity}:{bucket_name}"


def usage(granularity: str, bucket_name: str) -> str:
    """Return the usage hash (calls, errors, tokens by dimension) of one bucket."""
    return f"{USAGE_PREFIX}:{granularity}:{bucket_name}"


def errors(granularity: str, bucket_name: str) -> str:
    """Return the hash of failed call events by dimension and error type of one bucket."""
    return f"{ERRORS_PREFIX}:{granularity}:{bucket_name}"


def latency(granularity: str, bucket_name: str, backend: str, model: str) -> str:
    """Return the latency hash of one (backend, model) in one bucket."""
    return f"{LATENCY_PREFIX}:{granularity}:{bucket_name}:{backend}:{model}"


def latency_index(granularity: str, bucket_name: str) -> str:
    """Return the set of JSON ``[backend, model]`` pairs that have latency data in a bucket."""
    return f"{LATENCY_INDEX_PREFIX}:{granularity}:{bucket_name}"


def top_calls(day_bucket: str) -> str:
    """Return the sorted set of the most expensive call events of one UTC day."""
    return f"{TOP_CALLS_PREFIX}:d:{day_bucket}"


def dedup(group: str, hour_bucket: str) -> str:
    """Return the set of rollups (``<seq>:<producer_id>``) a group counted, by window hour."""
    return f"{DEDUP_PREFIX}:{group}:{hour_bucket}"


def heartbeat(group: str, consumer: str) -> str:
    """Return the heartbeat key of one consumer (expires unless refreshed)."""
    return f"{HEARTBEAT_PREFIX}:{group}:{consumer}"


def heartbeat_pattern(group: str) -> str:
    """Return the SCAN pattern matching every heartbeat key of a group."""
    return f"{HEARTBEAT_PREFIX}:{group}:*"


def stats(group: str) -> str:
    """Return the counters hash of a consumer group (processed, dlq, reclaimed, ...)."""
    return f"{STATS_PREFIX}:{group}"


# --- Sessions worker (shard 0 of layout version 2): per-session summaries and capped timelines ---

# Exact counters of one session from rollups (calls, errors, tokens, cost_nanousd) and, from
# call events, first/last seen, event counts per backend and thread, latency sum.
SESSION_PREFIX: Final = f"{SHARD0}:session"
# The newest call events of one session: a sorted set, score start_time, member JSON detail.
SESSION_TIMELINE_PREFIX: Final = f"{SHARD0}:sessiontl"
SESSION_TTL_S: Final = 7 * 86400
# Details of the call events of one UTC day that the insights need: a hash of
# "prompt:<hash>|<metric>" (repeated prompts) and "model:<model>|<metric>" (retries, failures,
# largest prompt).
CALL_DETAILS_PREFIX: Final = f"{SHARD0}:calldetail"

# --- Reports worker: one lock per (schedule, period) so replicas produce a report once ---
REPORT_LOCK_PREFIX: Final = f"{CONTROL}:reportlock"


def session(session_id: str) -> str:
    """Return the summary hash of one session."""
    return f"{SESSION_PREFIX}:{session_id}"


def session_timeline(session_id: str) -> str:
    """Return the timeline sorted set of one session (newest events, capped)."""
    return f"{SESSION_TIMELINE_PREFIX}:{session_id}"


def call_details(day_bucket: str) -> str:
    """Return the call-event details hash (prompt hashes, retries, failures) of one UTC day."""
    return f"{CALL_DETAILS_PREFIX}:d:{day_bucket}"


def report_lock(schedule: str, period_start: str) -> str:
    """Return the lock that marks the report of one schedule and period as produced."""
    return f"{REPORT_LOCK_PREFIX}:{schedule}:{period_start}"


# --- Alerts (evaluator state, silences) and the notification outbox ---

# One hash per alert fingerprint: status (pending|firing|resolved), since, starts_at, last_sent,
# last_seen, seq (notifications sent), rule, doc (the last alert document, JSON).
ALERT_STATE_PREFIX: Final = f"{CONTROL}:alert:state"
# Every fingerprint with a state hash, scored by when that hash expires (the server's clock): how
# readers find the states without a SCAN.
ALERT_STATES: Final = f"{CONTROL}:alert:states"
# Per rule, a sorted set of its pending/firing fingerprints scored by last seen (Unix s).
ALERT_ACTIVE_PREFIX: Final = f"{CONTROL}:alert:active"
# A resolved alert's state is kept this long after its last change (a restart continues).
ALERT_STATE_TTL_S: Final = 7 * 86400
# One string per silence (JSON: id, matchers, comment, created_by, starts_at, ends_at), expiring
# at its end, and a sorted set of silence ids scored by their end.
SILENCE_PREFIX: Final = f"{CONTROL}:silence"
SILENCES: Final = f"{CONTROL}:silences"
# Notifications that exhausted their attempts at one receiver (fields: receiver, reason, n).
NOTIFY_DLQ: Final = f"{CONTROL}:notify:dlq"
NOTIFY_MAXLEN: Final = 100_000
# Per receiver, the notify entry ids already delivered (a redelivered entry skips them).
NOTIFY_DONE_PREFIX: Final = f"{CONTROL}:notify:done"
NOTIFY_DONE_TTL_S: Final = 2 * 86400
# Counters per receiver: delivered, retried, failed, dead_lettered, silenced, rate_limited.
NOTIFY_STATS_PREFIX: Final = f"{CONTROL}:notify:stats"

# A shard commit cannot write control keys (another slot on a cluster), so a unit's alert
# steps and outbox messages are committed, with its XACKs, as one record of its shard's
# control outbox (a stream per group); the relay applies the records to control state in
# order and advances the group's cursor for that shard (the last record id applied), so a
# record is applied once. Internal; see docs/architecture.md.
CONTROL_OUTBOX_PREFIX: Final = f"{SHARD0}:ctl"
RELAYED_PREFIX: Final = f"{CONTROL}:relayed"


def alert_state(fingerprint: str) -> str:
    """Return the state hash of one alert fingerprint."""
    return f"{ALERT_STATE_PREFIX}:{fingerprint}"


def alert_active(rule: str) -> str:
    """Return the sorted set of a rule's pending and firing fingerprints (score: last seen)."""
    return f"{ALERT_ACTIVE_PREFIX}:{rule}"


def silence(silence_id: str) -> str:
    """Return the key of one silence (expires when the silence ends)."""
    return f"{SILENCE_PREFIX}:{silence_id}"


def notify_done(receiver: str) -> str:
    """Return the set of notify entry ids a receiver already has (delivered or dead-lettered)."""
    return f"{NOTIFY_DONE_PREFIX}:{receiver}"


def notify_stats(receiver: str) -> str:
    """Return the delivery counters hash of one receiver."""
    return f"{NOTIFY_STATS_PREFIX}:{receiver}"


def control_outbox(group: str) -> str:
    """Return the control outbox stream of a group on shard 0 (:func:`on_shard` moves it)."""
    return f"{CONTROL_OUTBOX_PREFIX}:{group}"


def relayed(group: str, shard: int) -> str:
    """Return the cursor of a group's control outbox on ``shard``: the last record applied."""
    return f"{RELAYED_PREFIX}:{group}:{shard}"


# --- Plugin analyzers (layout version 1): each plugin owns the keys under its own prefix ---

# Everything a plugin worker writes lives under ``llmtap:{s0}:x:<plugin>:`` (the runtime refuses a
# commit that writes elsewhere); its consumer group's counters and heartbeats live where every
# group's do (``stats``, ``heartbeat``). See docs/plugins.md.
PLUGIN_PREFIX: Final = f"{SHARD0}:x"  # per shard: a plugin's commit stays in one slot
# A plugin name: lower-case letters, digits and dashes, starting with a letter (so it can be a
# key segment, a consumer group, a CLI word and a compose service name).
PLUGIN_NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,39}")


def check_plugin_name(name: str) -> str:
    """Return ``name`` if it can name a plugin; raise ValueError saying what a name may hold."""
    if not isinstance(name, str) or PLUGIN_NAME.fullmatch(name) is None:
        raise ValueError(
            f"plugin name {name!r}: use 1-40 lower-case letters, digits and dashes, "
            "starting with a letter"
        )
    return name


def plugin_prefix(plugin: str) -> str:
    """Return the prefix every key of ``plugin`` starts with: ``llmtap:{s0}:x:<plugin>:``."""
    return f"{PLUGIN_PREFIX}:{check_plugin_name(plugin)}:"


def plugin_key(plugin: str, *parts: str) -> str:
    """Return the key ``llmtap:{s0}:x:<plugin>:<part>:<part>...``.

    Raises ValueError for a bad plugin name or an empty part.
    """
    if not parts or not all(isinstance(p, str) and p for p in parts):
        raise ValueError(f"plugin key parts must be non-empty strings, not {parts!r}")
    return plugin_prefix(plugin) + ":".join(parts)


def plugin_bucket(plugin: str, kind: str, granularity: str, bucket_name: str) -> str:
    """Return a plugin's time-bucketed key ``llmtap:{s0}:x:<plugin>:<kind>:{g}:{bucket}`` (the same
    bucket names and granularities as the built-in aggregates, so the range readers of
    :mod:`llmtap.read.ranges` cover it)."""
    if granularity not in BUCKET_SECONDS:
        raise KeyError(f"granularity {granularity!r}: accepted: {', '.join(GRANULARITIES)}")
    return plugin_key(plugin, kind, granularity, bucket_name)


def owned_by(plugin: str, key: str) -> bool:
    """True when ``key`` lies under ``plugin``'s prefix."""
    return key.startswith(plugin_prefix(plugin))
