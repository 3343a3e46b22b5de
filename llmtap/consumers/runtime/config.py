"""Settings of the worker processes (``LLMTAP_*`` variables), read once and validated.

A bad value raises :class:`llmtap.settings.SettingsError` naming the variable and what it
accepts, like every other llmtap setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Final

from llmtap import keys
from llmtap.settings import SettingsError, environ_or_process, number

ENGINES: Final = ("faststream", "loop")
_Table = Mapping[str, tuple[str, Callable[[str], Any]]]


def _engine(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ENGINES:
        raise ValueError(f"accepted values: {', '.join(ENGINES)}")
    return value


def _read(env: Mapping[str, str], table: _Table) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attr, (name, parse) in table.items():
        raw = env.get(name)
        if raw is None:
            continue
        try:
            values[attr] = parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{name}={raw!r} is invalid; {exc}") from None
    return values


@dataclass(frozen=True)
class Retention:
    """How long each granularity of aggregates is kept, in seconds (a TTL per bucket key)."""

    minute_s: int = keys.DEFAULT_TTL_S["m"]
    hour_s: int = keys.DEFAULT_TTL_S["h"]
    day_s: int = keys.DEFAULT_TTL_S["d"]

    ENV: ClassVar[_Table] = {
        "minute_s": ("LLMTAP_RETENTION_MINUTE_S", number(int, 60, 10 * 365 * 86400)),
        "hour_s": ("LLMTAP_RETENTION_HOUR_S", number(int, 3600, 10 * 365 * 86400)),
        "day_s": ("LLMTAP_RETENTION_DAY_S", number(int, 86400, 10 * 365 * 86400)),
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Retention:
        """Read LLMTAP_RETENTION_{MINUTE,HOUR,DAY}_S from ``environ`` (None: the process's);
        raise SettingsError on a bad value."""
        return cls(**_read(environ_or_process(environ), cls.ENV))

    def ttl(self, granularity: str) -> int:
        """Return the TTL (s) of a bucket of ``granularity`` (ten-minute buckets live as long as
        minutes, quarter days as long as hours, so a range loses both at the same edge)."""
        minute, hour = self.minute_s, self.hour_s
        return {"m": minute, "t": minute, "h": hour, "q": hour, "d": self.day_s}[granularity]


@dataclass(frozen=True)
class RuntimeConfig:
    """How a consumer reads, commits, reclaims and reports (see DESIGN.md, the contract).

    ``claim_idle_s``: entries pending longer than this are reclaimed from their consumer.
    ``max_deliveries``: an entry delivered more often goes to the dead-letter stream.
    ``flush_interval_s``/``flush_events``: a unit is committed when either is reached.
    ``read_count``: entries per XREADGROUP (each may hold ~100 events).
    """

    claim_idle_s: float = 30.0
    max_deliveries: int = 5
    flush_interval_s: float = 1.0
    flush_events: int = 50_000
    read_count: int = 100
    block_ms: int = 1000
    heartbeat_ttl_s: int = keys.HEARTBEAT_TTL_S
    dedup_ttl_s: int = keys.DEDUP_TTL_S
    dlq_maxlen: int = keys.DLQ_MAXLEN
    top_n: int = keys.TOP_CALLS_DEFAULT_N
    engine: str = "loop"

    ENV: ClassVar[_Table] = {
        "claim_idle_s": ("LLMTAP_CLAIM_IDLE_S", number(float, 0.05, 86400.0)),
        "max_deliveries": ("LLMTAP_MAX_DELIVERIES", number(int, 1, 1000)),
        "flush_interval_s": ("LLMTAP_FLUSH_INTERVAL_S", number(float, 0.001, 60.0)),
        "flush_events": ("LLMTAP_FLUSH_EVENTS", number(int, 1, 10_000_000)),
        "read_count": ("LLMTAP_READ_COUNT", number(int, 1, 1000)),
        "block_ms": ("LLMTAP_BLOCK_MS", number(int, 1, 60_000)),
        "heartbeat_ttl_s": ("LLMTAP_HEARTBEAT_TTL_S", number(int, 1, 3600)),
        "dedup_ttl_s": ("LLMTAP_DEDUP_TTL_S", number(int, 60, 365 * 86400)),
        "dlq_maxlen": ("LLMTAP_DLQ_MAXLEN", number(int, 100, 100_000_000)),
        "top_n": ("LLMTAP_TOP_CALLS", number(int, 1, 100_000)),
        "engine": ("LLMTAP_WORKER_ENGINE", _engine),
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RuntimeConfig:
        """Read the LLMTAP_* worker variables from ``environ`` (None: the process's); raise
        SettingsError naming a bad one."""
        return cls(**_read(environ_or_process(environ), cls.ENV))

    @property
    def reclaim_interval_s(self) -> float:
        """How often to look for abandoned entries: half the idle threshold, at most 10 s."""
        return min(self.claim_idle_s / 2, 10.0)


WORKER_SHARDS_ENV: Final = "LLMTAP_WORKER_SHARDS"


def worker_shards(environ: Mapping[str, str], shards: int) -> tuple[int, ...]:
    """Return the shards this replica consumes: ``LLMTAP_WORKER_SHARDS`` (comma-separated
    shard numbers, e.g. ``0,2``), or every shard of ``shards`` when it is unset or empty.

    Raises SettingsError naming the variable for a number that is not a shard below
    ``shards``, a repeated one, or anything that is not a number.
    """
    raw = environ.get(WORKER_SHARDS_ENV, "").strip()
    if not raw:
        return tuple(range(shards))
    accepted = f"comma-separated shard numbers from 0 to {shards - 1} (LLMTAP_SHARDS={shards})"
    try:
        chosen = tuple(int(part) for part in raw.split(","))
    except ValueError:
        chosen = (-1,)
    if any(not 0 <= k < shards for k in chosen) or len(set(chosen)) < len(chosen):
        raise SettingsError(f"{WORKER_SHARDS_ENV}={raw!r} is invalid; accepted values: {accepted}")
    return tuple(sorted(chosen))


def variables() -> list[tuple[str, str, Any]]:
    """Return (variable, attribute, default) for every worker variable, for docs and --help."""
    out: list[tuple[str, str, Any]] = []
    for cls in (RuntimeConfig, Retention):
        defaults = {f.name: f.default for f in fields(cls)}
        out.extend((env, attr, defaults[attr]) for attr, (env, _) in cls.ENV.items())
    return out
