"""One settings object, read once from the environment and validated on creation.

The original profiler's ``CS_PROFILING_*`` variables keep their names and defaults; llmtap's
own settings use the ``LLMTAP_`` prefix. A bad value raises :class:`SettingsError` naming the
variable and the values it accepts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

LEVELS: Final = ("disabled", "basic", "standard", "detailed")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
# Query parameters of a Redis URL whose value is a credential (redis-py reads both forms).
_CREDENTIAL_PARAMS: Final = ("password", "username", "token", "secret")


class SettingsError(ValueError):
    """A setting has a value llmtap cannot use; the message names the variable."""


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("accepted values: true/false, 1/0, yes/no, on/off")


def _parse_level(raw: str) -> str:
    value = raw.strip().lower()
    if value not in LEVELS:
        raise ValueError(f"accepted values: {', '.join(LEVELS)}")
    return value


def number(kind: type, low: float, high: float = math.inf) -> Callable[[str], Any]:
    """Return a parser of ``kind`` (int or float) in ``[low, high]``; NaN is rejected.

    The parser raises ValueError whose message lists the accepted values.
    """

    def parse(raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:
            value = math.nan
        if not (low <= value <= high):  # also rejects NaN
            raise ValueError(f"accepted values: a {kind.__name__} between {low} and {high}")
        return value

    return parse


def _parse_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
    if not value.startswith(schemes):
        raise ValueError(f"accepted values: a URL starting with {', '.join(schemes)}")
    return value


def _parse_optional_str(raw: str) -> str | None:
    return raw.strip() or None


@dataclass(frozen=True)
class Var:
    """One environment variable: the attribute it fills, its parser, default and meaning."""

    env: str
    attr: str
    parse: Callable[[str], Any]
    default: Any
    help: str


VARIABLES: Final[tuple[Var, ...]] = (
    Var("CS_PROFILING_ENABLED", "enabled", _parse_bool, True, "profile calls at all"),
    Var(
        "CS_PROFILING_LEVEL",
        "level",
        _parse_level,
        "standard",
        "disabled, basic (timing), standard (+tokens, cost), detailed (+peak memory)",
    ),
    Var(
        "CS_PROFILING_SAMPLING_RATE",
        "sampling_rate",
        number(float, 0.0, 1.0),
        0.1,
        "share of calls sent as call events; errors, slow, breaker and expensive calls always are",
    ),
    Var("CS_PROFILING_TRACK_TOKENS", "track_tokens", _parse_bool, True, "read token counts"),
    Var("CS_PROFILING_TRACK_COSTS", "track_costs", _parse_bool, True, "compute cost in USD"),
    Var(
        "CS_PROFILING_TRACK_MEMORY",
        "track_memory",
        _parse_bool,
        False,
        "peak memory during the call (tracemalloc; also on at level detailed)",
    ),
    Var(
        "CS_PROFILING_TRACK_NETWORK",
        "track_network",
        _parse_bool,
        True,
        "split latency into network and processing time",
    ),
    Var(
        "CS_PROFILING_MAX_HISTORY",
        "max_history",
        number(int, 1),
        10000,
        "events kept per session timeline",
    ),
    Var(
        "CS_PROFILING_COST_ALERT",
        "cost_alert_usd",
        number(float, 0.0),
        100.0,
        "daily cost alert threshold (USD)",
    ),
    Var(
        "CS_PROFILING_LATENCY_ALERT",
        "latency_alert_s",
        number(float, 0.0),
        30.0,
        "single-call latency alert threshold (seconds)",
    ),
    Var(
        "CS_PROFILING_MEMORY_ALERT",
        "memory_alert_mb",
        number(float, 0.0),
        1000.0,
        "single-call memory alert threshold (MB)",
    ),
    Var(
        "LLMTAP_REDIS_URL",
        "redis_url",
        _parse_url,
        None,
        "redis://, rediss:// (TLS), unix:// or redis+cluster:// (rediss+cluster://: Redis/Valkey "
        "Cluster) URL; when unset the wrapper and every command use "
        "a running `llmtap up`'s server, else redis://127.0.0.1:6379/0; `llmtap up` starts an "
        "embedded Valkey; `llmtap demo` always does unless given --url",
    ),
    Var(
        "LLMTAP_STREAM_MAXLEN",
        "stream_maxlen",
        number(int, 1000),
        1_000_000,
        "approximate cap on the events stream (XADD MAXLEN ~)",
    ),
    Var(
        "LLMTAP_QUEUE_SIZE",
        "queue_size",
        number(int, 1),
        100_000,
        "in-process queue bound; beyond it events are dropped and counted",
    ),
    Var(
        "LLMTAP_BATCH_SIZE",
        "batch_size",
        number(int, 1, 10_000),
        100,
        "most events packed into one stream entry",
    ),
    Var(
        "LLMTAP_ROLLUP_INTERVAL",
        "rollup_interval_s",
        number(float, 0.05, 3600.0),
        5.0,
        "seconds between exact rollup events",
    ),
    Var(
        "LLMTAP_SLOW_CALL_S",
        "slow_call_s",
        number(float, 0.0),
        10.0,
        "calls slower than this (seconds) are always kept",
    ),
    Var(
        "LLMTAP_EXPENSIVE_CALL_USD",
        "expensive_call_usd",
        number(float, 0.0),
        0.10,
        "calls costing more than this (USD) are always kept",
    ),
    Var(
        "LLMTAP_PRICES_FILE",
        "prices_file",
        _parse_optional_str,
        None,
        "JSON file of per provider/model rates that win over the catalogue",
    ),
    Var(
        "LLMTAP_COST_MODEL",
        "cost_model",
        _parse_optional_str,
        None,
        "custom cost model that prices calls before the catalogue: module:callable, or the "
        "name of an llmtap.cost_models entry point (docs/plugins.md)",
    ),
    Var(
        "LLMTAP_OLLAMA_USD_PER_HOUR",
        "ollama_usd_per_hour",
        number(float, 0.0),
        0.0,
        "price of an hour of local Ollama compute",
    ),
    Var(
        "LLMTAP_SETTINGS_POLL_S",
        "settings_poll_s",
        number(float, 0.05, 3600.0),
        5.0,
        "how often producers read the runtime-settings key",
    ),
    Var(
        "LLMTAP_EXIT_FLUSH_S",
        "exit_flush_s",
        number(float, 0.0, 60.0),
        2.0,
        "longest wait at interpreter exit to flush queued events",
    ),
    Var(
        "LLMTAP_SHARDS",
        "shards",
        number(int, 1, 1024),
        1,
        "number of event streams llmtap:{s<k>}:events (Redis/Valkey Cluster); a producer writes "
        "to the one its producer id hashes to, workers consume them all; the same on every process",
    ),
    Var(
        "LLMTAP_WAIT_REPLICAS",
        "wait_replicas",
        number(int, 0, 16),
        0,
        "replicas that must have each producer write (WAIT, at most 1 s) before it counts as "
        "sent; an unconfirmed rollup is retried, unconfirmed call events are counted dropped",
    ),
    Var(
        "LLMTAP_PRODUCER_ID",
        "producer_id",
        _parse_optional_str,
        None,
        "name of this producer in rollups (default: host-pid-random)",
    ),
    Var(
        "LLMTAP_METRICS_MAX_MODELS",
        "metrics_max_models",
        number(int, 0, 10_000),
        30,
        "/metrics: models with their own label (the busiest; the rest are 'other')",
    ),
    Var(
        "LLMTAP_METRICS_MAX_PROVIDERS",
        "metrics_max_providers",
        number(int, 0, 10_000),
        20,
        "/metrics: providers (backends) with their own label (the rest are 'other')",
    ),
    Var(
        "LLMTAP_METRICS_MAX_TENANTS",
        "metrics_max_tenants",
        number(int, 0, 10_000),
        20,
        "/metrics: tenants with their own label (the rest are 'other')",
    ),
    Var(
        "LLMTAP_METRICS_QUANTILE_WINDOW_S",
        "metrics_quantile_window_s",
        number(float, 60.0, 86_400.0),
        300.0,
        "/metrics: the recent window the latency quantiles cover (seconds)",
    ),
)

# Settings that `configure_profiling_settings` may change at run time through Redis.
RUNTIME_ATTRS: Final = frozenset(
    {
        "enabled",
        "level",
        "sampling_rate",
        "track_tokens",
        "track_costs",
        "track_memory",
        "track_network",
        "slow_call_s",
        "expensive_call_usd",
    }
)


@dataclass(frozen=True)
class Settings:
    """Validated llmtap settings. Build with :meth:`from_env` or with keyword arguments."""

    enabled: bool = True
    level: str = "standard"
    sampling_rate: float = 0.1
    track_tokens: bool = True
    track_costs: bool = True
    track_memory: bool = False
    track_network: bool = True
    max_history: int = 10000
    cost_alert_usd: float = 100.0
    latency_alert_s: float = 30.0
    memory_alert_mb: float = 1000.0
    redis_url: str | None = dataclasses.field(default=None, repr=False)
    stream_maxlen: int = 1_000_000
    queue_size: int = 100_000
    batch_size: int = 100
    rollup_interval_s: float = 5.0
    slow_call_s: float = 10.0
    expensive_call_usd: float = 0.10
    prices_file: str | None = None
    cost_model: str | None = None
    ollama_usd_per_hour: float = 0.0
    settings_poll_s: float = 5.0
    exit_flush_s: float = 2.0
    producer_id: str | None = None
    metrics_max_models: int = 30
    metrics_max_providers: int = 20
    metrics_max_tenants: int = 20
    metrics_quantile_window_s: float = 300.0
    shards: int = 1
    wait_replicas: int = 0

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise SettingsError(f"level: {self.level!r} is not one of {', '.join(LEVELS)}")
        if not 0.0 <= self.sampling_rate <= 1.0:
            raise SettingsError(f"sampling_rate: {self.sampling_rate!r} is not between 0 and 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every variable in :data:`VARIABLES`; raise SettingsError on the first bad one."""
        env = environ_or_process(environ)
        values: dict[str, Any] = {}
        for var in VARIABLES:
            raw = env.get(var.env)
            if raw is None:
                continue
            values[var.attr] = _parse(var, raw)
        return cls(**values)

    @property
    def effective_level(self) -> str:
        """The level in force: ``disabled`` whenever profiling is switched off."""
        return self.level if self.enabled else "disabled"

    def with_overrides(self, overrides: Mapping[str, str]) -> Settings:
        """Return a copy with runtime overrides (attribute name -> raw string) applied.

        Raises SettingsError for an unknown or read-only name or a bad value.
        """
        by_attr = {var.attr: var for var in VARIABLES}
        values: dict[str, Any] = {}
        for attr, raw in overrides.items():
            if attr not in RUNTIME_ATTRS:
                accepted = ", ".join(sorted(RUNTIME_ATTRS))
                raise SettingsError(f"{attr}: not a runtime setting; accepted: {accepted}")
            values[attr] = _parse(by_attr[attr], raw)
        return dataclasses.replace(self, **values)

    def runtime_view(self) -> dict[str, Any]:
        """Return the settings that can change at run time, by attribute name."""
        return {attr: getattr(self, attr) for attr in sorted(RUNTIME_ATTRS)}


def environ_or_process(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """Return ``environ``, or the process environment when it is None (the one place that
    reads ``os.environ`` for a parser; entry points pass a snapshot instead)."""
    return os.environ if environ is None else environ


def redact_url(url: str | None) -> str:
    """Return ``url`` with every credential replaced by ``***``, safe to log or print.

    Redacts the userinfo password (``user:***@``; a user name alone is left as it is, as
    redis-py reads it: a name, not a secret) and the value of every query parameter that
    carries a credential (``password``, ``username``, ``ssl_password``, ...). None is
    ``<embedded>``.
    """
    if not url:
        return "<embedded>"
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, hash_sign, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    # The last "@" ends the userinfo even when an unencoded password holds a "/".
    userinfo, at, rest = rest.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        rest = f"{user}:***@{rest}" if colon else f"{user}@{rest}"
    if question:
        query = "&".join(_redact_param(item) for item in query.split("&"))
    return f"{scheme}://{rest}{question}{query}{hash_sign}{fragment}"


def url_secrets(url: str | None) -> list[str]:
    """Return the credential values in ``url`` (what :func:`redact_url` hides), longest first,
    so a message that quotes one can be scrubbed with ``str.replace``."""
    if not url or "://" not in url:
        return []
    rest = url.partition("://")[2].partition("#")[0]
    rest, _, query = rest.partition("?")
    userinfo, at, _ = rest.rpartition("@")
    found = [userinfo.partition(":")[2]] if at else []
    for item in query.split("&"):
        name, eq, value = item.partition("=")
        if eq and _is_credential(name):
            found.append(value)
    decoded = [urllib.parse.unquote(value) for value in found]
    return sorted({s for s in found + decoded if s}, key=len, reverse=True)


def _is_credential(name: str) -> bool:
    lowered = urllib.parse.unquote(name).lower()
    return any(word in lowered for word in _CREDENTIAL_PARAMS)


def _redact_param(item: str) -> str:
    name, eq, _value = item.partition("=")
    return f"{name}=***" if eq and _is_credential(name) else item


def _parse(var: Var, raw: str) -> Any:
    try:
        return var.parse(raw)
    except ValueError as exc:
        shown = redact_url(raw) if "://" in raw else raw
        raise SettingsError(f"{var.env}={shown!r} is invalid; {exc}") from None
