"""Settings read from the environment: defaults, parsing, rejection messages, runtime overrides
and password redaction."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from llmtap.settings import (
    LEVELS,
    RUNTIME_ATTRS,
    VARIABLES,
    Settings,
    SettingsError,
    redact_url,
)

# The documented defaults, written out independently of VARIABLES so a changed default shows up.
DEFAULTS: dict[str, tuple[str, Any]] = {
    "CS_PROFILING_ENABLED": ("enabled", True),
    "CS_PROFILING_LEVEL": ("level", "standard"),
    "CS_PROFILING_SAMPLING_RATE": ("sampling_rate", 0.1),
    "CS_PROFILING_TRACK_TOKENS": ("track_tokens", True),
    "CS_PROFILING_TRACK_COSTS": ("track_costs", True),
    "CS_PROFILING_TRACK_MEMORY": ("track_memory", False),
    "CS_PROFILING_TRACK_NETWORK": ("track_network", True),
    "CS_PROFILING_MAX_HISTORY": ("max_history", 10000),
    "CS_PROFILING_COST_ALERT": ("cost_alert_usd", 100.0),
    "CS_PROFILING_LATENCY_ALERT": ("latency_alert_s", 30.0),
    "CS_PROFILING_MEMORY_ALERT": ("memory_alert_mb", 1000.0),
    "LLMTAP_REDIS_URL": ("redis_url", None),
    "LLMTAP_STREAM_MAXLEN": ("stream_maxlen", 1_000_000),
    "LLMTAP_QUEUE_SIZE": ("queue_size", 100_000),
    "LLMTAP_BATCH_SIZE": ("batch_size", 100),
    "LLMTAP_ROLLUP_INTERVAL": ("rollup_interval_s", 5.0),
    "LLMTAP_SLOW_CALL_S": ("slow_call_s", 10.0),
    "LLMTAP_EXPENSIVE_CALL_USD": ("expensive_call_usd", 0.10),
    "LLMTAP_PRICES_FILE": ("prices_file", None),
    "LLMTAP_COST_MODEL": ("cost_model", None),
    "LLMTAP_OLLAMA_USD_PER_HOUR": ("ollama_usd_per_hour", 0.0),
    "LLMTAP_SETTINGS_POLL_S": ("settings_poll_s", 5.0),
    "LLMTAP_EXIT_FLUSH_S": ("exit_flush_s", 2.0),
    "LLMTAP_PRODUCER_ID": ("producer_id", None),
    "LLMTAP_METRICS_MAX_MODELS": ("metrics_max_models", 30),
    "LLMTAP_METRICS_MAX_PROVIDERS": ("metrics_max_providers", 20),
    "LLMTAP_METRICS_MAX_TENANTS": ("metrics_max_tenants", 20),
    "LLMTAP_METRICS_QUANTILE_WINDOW_S": ("metrics_quantile_window_s", 300.0),
    "LLMTAP_SHARDS": ("shards", 1),
    "LLMTAP_WAIT_REPLICAS": ("wait_replicas", 0),
}

BOOL_VARS = [
    ("CS_PROFILING_ENABLED", "enabled"),
    ("CS_PROFILING_TRACK_TOKENS", "track_tokens"),
    ("CS_PROFILING_TRACK_COSTS", "track_costs"),
    ("CS_PROFILING_TRACK_MEMORY", "track_memory"),
    ("CS_PROFILING_TRACK_NETWORK", "track_network"),
]
TRUE_SPELLINGS = ["true", "TRUE", "True", "1", "yes", "YES", "Yes", "on", "ON", " true "]
FALSE_SPELLINGS = ["false", "FALSE", "False", "0", "no", "NO", "No", "off", "OFF", " off\n"]
BOOL_ACCEPTED = ["true/false", "1/0", "yes/no", "on/off"]
URL_ACCEPTED = ["redis://", "rediss://", "unix://"]
PASSWORD = "hunter2-s3cret"


def _var_ids(cases: list[tuple[Any, ...]]) -> list[str]:
    return [f"{case[0]}={case[1]!r}" for case in cases]


def test_defaults_table_covers_every_variable() -> None:
    """The defaults table above names exactly the variables in VARIABLES, with their attributes."""
    assert {var.env: var.attr for var in VARIABLES} == {
        env: attr for env, (attr, _) in DEFAULTS.items()
    }


@pytest.mark.parametrize("var", VARIABLES, ids=[var.env for var in VARIABLES])
def test_empty_environment_gives_documented_default(var: Any) -> None:
    """With no variable set, each setting holds its documented default."""
    attr, expected = DEFAULTS[var.env]
    value = getattr(Settings.from_env({}), attr)
    assert value == expected
    assert type(value) is type(expected)
    assert var.default == expected


def test_from_env_without_mapping_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings.from_env() with no argument reads the process environment."""
    for var in VARIABLES:
        monkeypatch.delenv(var.env, raising=False)
    monkeypatch.setenv("CS_PROFILING_LEVEL", "basic")
    monkeypatch.setenv("LLMTAP_QUEUE_SIZE", "7")
    settings = Settings.from_env()
    assert (settings.level, settings.queue_size) == ("basic", 7)


@pytest.mark.parametrize(("env", "attr"), BOOL_VARS)
@pytest.mark.parametrize(
    ("raw", "expected"),
    [(raw, True) for raw in TRUE_SPELLINGS] + [(raw, False) for raw in FALSE_SPELLINGS],
)
def test_bool_variable_parses_every_spelling(env: str, attr: str, raw: str, expected: bool) -> None:
    """A boolean variable reads true/false, 1/0, yes/no and on/off in any case."""
    assert getattr(Settings.from_env({env: raw}), attr) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("disabled", "disabled"),
        ("basic", "basic"),
        ("standard", "standard"),
        ("detailed", "detailed"),
        ("DETAILED", "detailed"),
        (" Basic ", "basic"),
    ],
)
def test_level_parses_level_names(raw: str, expected: str) -> None:
    """CS_PROFILING_LEVEL reads each level name, case and surrounding blanks ignored."""
    assert Settings.from_env({"CS_PROFILING_LEVEL": raw}).level == expected


NUMBER_CASES: list[tuple[str, str, str, float]] = [
    ("CS_PROFILING_SAMPLING_RATE", "0", "sampling_rate", 0.0),
    ("CS_PROFILING_SAMPLING_RATE", "1", "sampling_rate", 1.0),
    ("CS_PROFILING_SAMPLING_RATE", "0.25", "sampling_rate", 0.25),
    ("CS_PROFILING_SAMPLING_RATE", " 0.5 ", "sampling_rate", 0.5),
    ("CS_PROFILING_SAMPLING_RATE", "1e-3", "sampling_rate", 0.001),
    ("CS_PROFILING_MAX_HISTORY", "1", "max_history", 1),
    ("CS_PROFILING_MAX_HISTORY", "500", "max_history", 500),
    ("CS_PROFILING_COST_ALERT", "0", "cost_alert_usd", 0.0),
    ("CS_PROFILING_COST_ALERT", "12.5", "cost_alert_usd", 12.5),
    ("CS_PROFILING_LATENCY_ALERT", "2.5", "latency_alert_s", 2.5),
    ("CS_PROFILING_MEMORY_ALERT", "512", "memory_alert_mb", 512.0),
    ("LLMTAP_STREAM_MAXLEN", "1000", "stream_maxlen", 1000),
    ("LLMTAP_STREAM_MAXLEN", "5000000", "stream_maxlen", 5_000_000),
    ("LLMTAP_QUEUE_SIZE", "1", "queue_size", 1),
    ("LLMTAP_QUEUE_SIZE", "50", "queue_size", 50),
    ("LLMTAP_BATCH_SIZE", "1", "batch_size", 1),
    ("LLMTAP_BATCH_SIZE", "10000", "batch_size", 10_000),
    ("LLMTAP_ROLLUP_INTERVAL", "0.05", "rollup_interval_s", 0.05),
    ("LLMTAP_ROLLUP_INTERVAL", "3600", "rollup_interval_s", 3600.0),
    ("LLMTAP_SLOW_CALL_S", "0", "slow_call_s", 0.0),
    ("LLMTAP_SLOW_CALL_S", "2.5", "slow_call_s", 2.5),
    ("LLMTAP_EXPENSIVE_CALL_USD", "0.5", "expensive_call_usd", 0.5),
    ("LLMTAP_OLLAMA_USD_PER_HOUR", "1.2", "ollama_usd_per_hour", 1.2),
    ("LLMTAP_SETTINGS_POLL_S", "0.05", "settings_poll_s", 0.05),
    ("LLMTAP_SETTINGS_POLL_S", "3600", "settings_poll_s", 3600.0),
    ("LLMTAP_EXIT_FLUSH_S", "0", "exit_flush_s", 0.0),
    ("LLMTAP_EXIT_FLUSH_S", "60", "exit_flush_s", 60.0),
]


@pytest.mark.parametrize(
    ("env", "raw", "attr", "expected"), NUMBER_CASES, ids=_var_ids(NUMBER_CASES)
)
def test_number_variable_parses_values_in_range(
    env: str, raw: str, attr: str, expected: float
) -> None:
    """A numeric variable reads a number within its range, bounds included."""
    value = getattr(Settings.from_env({env: raw}), attr)
    assert value == expected
    assert type(value) is type(DEFAULTS[env][1])


STRING_CASES: list[tuple[str, str, str, str | None]] = [
    ("LLMTAP_REDIS_URL", "redis://cache:6379/0", "redis_url", "redis://cache:6379/0"),
    ("LLMTAP_REDIS_URL", "rediss://u:p@cache:6380/1", "redis_url", "rediss://u:p@cache:6380/1"),
    ("LLMTAP_REDIS_URL", "unix:///tmp/redis.sock", "redis_url", "unix:///tmp/redis.sock"),
    ("LLMTAP_REDIS_URL", " redis://cache:6379/0 ", "redis_url", "redis://cache:6379/0"),
    ("LLMTAP_REDIS_URL", "", "redis_url", None),
    ("LLMTAP_REDIS_URL", "   ", "redis_url", None),
    ("LLMTAP_PRICES_FILE", "/etc/llmtap/prices.json", "prices_file", "/etc/llmtap/prices.json"),
    ("LLMTAP_PRICES_FILE", "", "prices_file", None),
    ("LLMTAP_PRODUCER_ID", "api-1", "producer_id", "api-1"),
    ("LLMTAP_PRODUCER_ID", "  ", "producer_id", None),
    ("LLMTAP_SHARDS", "3", "shards", 3),
    ("LLMTAP_WAIT_REPLICAS", "1", "wait_replicas", 1),
]


@pytest.mark.parametrize(
    ("env", "raw", "attr", "expected"), STRING_CASES, ids=_var_ids(STRING_CASES)
)
def test_string_variable_parses_value_and_blank_means_unset(
    env: str, raw: str, attr: str, expected: str | None
) -> None:
    """A string variable is stripped, and a blank value means unset."""
    assert getattr(Settings.from_env({env: raw}), attr) == expected


SAMPLING_ACCEPTED = ["float", "0.0", "1.0"]
BAD_CASES: list[tuple[str, str, list[str]]] = [
    ("CS_PROFILING_LEVEL", "verbose", list(LEVELS)),
    ("CS_PROFILING_LEVEL", "", list(LEVELS)),
    ("CS_PROFILING_SAMPLING_RATE", "1.5", SAMPLING_ACCEPTED),
    ("CS_PROFILING_SAMPLING_RATE", "-0.1", SAMPLING_ACCEPTED),
    ("CS_PROFILING_SAMPLING_RATE", "nan", SAMPLING_ACCEPTED),
    ("CS_PROFILING_SAMPLING_RATE", "inf", SAMPLING_ACCEPTED),
    ("CS_PROFILING_SAMPLING_RATE", "abc", SAMPLING_ACCEPTED),
    ("CS_PROFILING_SAMPLING_RATE", "", SAMPLING_ACCEPTED),
    ("CS_PROFILING_ENABLED", "maybe", BOOL_ACCEPTED),
    ("CS_PROFILING_ENABLED", "", BOOL_ACCEPTED),
    ("CS_PROFILING_ENABLED", "2", BOOL_ACCEPTED),
    ("CS_PROFILING_ENABLED", "y", BOOL_ACCEPTED),
    ("CS_PROFILING_TRACK_TOKENS", "maybe", BOOL_ACCEPTED),
    ("CS_PROFILING_TRACK_COSTS", "nope", BOOL_ACCEPTED),
    ("CS_PROFILING_TRACK_MEMORY", "enabled", BOOL_ACCEPTED),
    ("CS_PROFILING_TRACK_NETWORK", "-1", BOOL_ACCEPTED),
    ("CS_PROFILING_MAX_HISTORY", "0", ["int", "1"]),
    ("CS_PROFILING_MAX_HISTORY", "10.5", ["int", "1"]),
    ("CS_PROFILING_COST_ALERT", "-1", ["float", "0.0"]),
    ("CS_PROFILING_COST_ALERT", "nan", ["float", "0.0"]),
    ("CS_PROFILING_LATENCY_ALERT", "-0.5", ["float", "0.0"]),
    ("CS_PROFILING_MEMORY_ALERT", "abc", ["float", "0.0"]),
    ("LLMTAP_REDIS_URL", "http://x", URL_ACCEPTED),
    ("LLMTAP_REDIS_URL", "localhost:6379", URL_ACCEPTED),
    ("LLMTAP_STREAM_MAXLEN", "999", ["int", "1000"]),
    ("LLMTAP_QUEUE_SIZE", "0", ["int", "1"]),
    ("LLMTAP_QUEUE_SIZE", "-1", ["int", "1"]),
    ("LLMTAP_QUEUE_SIZE", "many", ["int", "1"]),
    ("LLMTAP_BATCH_SIZE", "0", ["int", "1", "10000"]),
    ("LLMTAP_BATCH_SIZE", "10001", ["int", "1", "10000"]),
    ("LLMTAP_SHARDS", "0", ["int", "1", "1024"]),
    ("LLMTAP_SHARDS", "two", ["int", "1", "1024"]),
    ("LLMTAP_ROLLUP_INTERVAL", "0.01", ["float", "0.05", "3600"]),
    ("LLMTAP_ROLLUP_INTERVAL", "3601", ["float", "0.05", "3600"]),
    ("LLMTAP_SLOW_CALL_S", "nan", ["float", "0.0"]),
    ("LLMTAP_EXPENSIVE_CALL_USD", "-0.01", ["float", "0.0"]),
    ("LLMTAP_OLLAMA_USD_PER_HOUR", "-1", ["float", "0.0"]),
    ("LLMTAP_SETTINGS_POLL_S", "0", ["float", "0.05", "3600"]),
    ("LLMTAP_EXIT_FLUSH_S", "61", ["float", "0.0", "60.0"]),
    ("LLMTAP_EXIT_FLUSH_S", "-1", ["float", "0.0", "60.0"]),
]


@pytest.mark.parametrize(("env", "raw", "accepted"), BAD_CASES, ids=_var_ids(BAD_CASES))
def test_bad_value_raises_error_naming_variable_and_accepted_values(
    env: str, raw: str, accepted: list[str]
) -> None:
    """A bad value raises SettingsError whose message names the variable and what it accepts."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env({env: raw})
    message = str(info.value)
    assert env in message
    assert "accepted values" in message
    for fragment in accepted:
        assert fragment in message


def test_rejected_redis_url_error_does_not_leak_password() -> None:
    """The error for a rejected LLMTAP_REDIS_URL does not repeat the URL's password."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"LLMTAP_REDIS_URL": f"http://default:{PASSWORD}@cache:6379/0"})
    assert "LLMTAP_REDIS_URL" in str(info.value)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://cache:6379/0",
        "rediss://cache:6380/0",
        "unix:///tmp/redis.sock",
    ],
)
def test_accepted_redis_url_is_usable_by_the_redis_client(url: str) -> None:
    """Every URL scheme LLMTAP_REDIS_URL accepts is one the redis client can connect with."""
    configured = Settings.from_env({"LLMTAP_REDIS_URL": url}).redis_url
    assert configured == url
    client = redis.Redis.from_url(configured)  # builds a pool; opens no connection
    client.close()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"enabled": True, "level": "basic"}, "basic"),
        ({"enabled": True, "level": "standard"}, "standard"),
        ({"enabled": True, "level": "detailed"}, "detailed"),
        ({"enabled": True, "level": "disabled"}, "disabled"),
        ({"enabled": False, "level": "basic"}, "disabled"),
        ({"enabled": False, "level": "standard"}, "disabled"),
        ({"enabled": False, "level": "detailed"}, "disabled"),
    ],
)
def test_effective_level(kwargs: dict[str, Any], expected: str) -> None:
    """effective_level is the level, or disabled whenever profiling is switched off."""
    assert Settings(**kwargs).effective_level == expected


def test_effective_level_from_env_when_disabled() -> None:
    """CS_PROFILING_ENABLED=false makes the effective level disabled whatever the level says."""
    env = {"CS_PROFILING_ENABLED": "false", "CS_PROFILING_LEVEL": "detailed"}
    settings = Settings.from_env(env)
    assert (settings.level, settings.effective_level) == ("detailed", "disabled")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"level": "verbose"}, "level"),
        ({"sampling_rate": 1.5}, "sampling_rate"),
        ({"sampling_rate": -0.1}, "sampling_rate"),
        ({"sampling_rate": float("nan")}, "sampling_rate"),
    ],
)
def test_keyword_construction_validates(kwargs: dict[str, Any], fragment: str) -> None:
    """Settings built with keyword arguments reject a bad level or sampling rate."""
    with pytest.raises(SettingsError, match=fragment):
        Settings(**kwargs)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"enabled": "false"}, {"enabled": False}),
        ({"level": "DETAILED"}, {"level": "detailed"}),
        ({"sampling_rate": "1"}, {"sampling_rate": 1.0}),
        ({"sampling_rate": "0"}, {"sampling_rate": 0.0}),
        ({"track_tokens": "off"}, {"track_tokens": False}),
        ({"track_costs": "no"}, {"track_costs": False}),
        ({"track_memory": "on"}, {"track_memory": True}),
        ({"track_network": "0"}, {"track_network": False}),
        ({"slow_call_s": "2.5"}, {"slow_call_s": 2.5}),
        ({"expensive_call_usd": "1"}, {"expensive_call_usd": 1.0}),
        (
            {"level": "basic", "sampling_rate": "0.5", "enabled": "yes"},
            {"level": "basic", "sampling_rate": 0.5, "enabled": True},
        ),
        ({}, {}),
    ],
)
def test_with_overrides_applies_runtime_settings(
    overrides: dict[str, str], expected: dict[str, Any]
) -> None:
    """with_overrides returns a copy with the runtime settings parsed and applied, the rest kept."""
    base = Settings(queue_size=7, redis_url="redis://cache:6379/0")
    updated = base.with_overrides(overrides)
    for attr, value in expected.items():
        assert getattr(updated, attr) == value
    untouched = {var.attr for var in VARIABLES} - set(expected)
    for attr in untouched:
        assert getattr(updated, attr) == getattr(base, attr)
    assert base == Settings(queue_size=7, redis_url="redis://cache:6379/0")


@pytest.mark.parametrize(
    "name", ["redis_url", "queue_size", "batch_size", "max_history", "producer_id", "bogus"]
)
def test_with_overrides_rejects_non_runtime_name(name: str) -> None:
    """with_overrides refuses a name that cannot change at run time, naming it and the options."""
    with pytest.raises(SettingsError) as info:
        Settings().with_overrides({name: "1"})
    message = str(info.value)
    assert name in message
    assert "not a runtime setting" in message
    for attr in RUNTIME_ATTRS:
        assert attr in message


@pytest.mark.parametrize(
    ("overrides", "env"),
    [
        ({"sampling_rate": "1.5"}, "CS_PROFILING_SAMPLING_RATE"),
        ({"sampling_rate": "nan"}, "CS_PROFILING_SAMPLING_RATE"),
        ({"enabled": "maybe"}, "CS_PROFILING_ENABLED"),
        ({"level": "verbose"}, "CS_PROFILING_LEVEL"),
        ({"track_memory": "2"}, "CS_PROFILING_TRACK_MEMORY"),
        ({"slow_call_s": "-1"}, "LLMTAP_SLOW_CALL_S"),
        ({"expensive_call_usd": "abc"}, "LLMTAP_EXPENSIVE_CALL_USD"),
    ],
)
def test_with_overrides_rejects_bad_value(overrides: dict[str, str], env: str) -> None:
    """with_overrides raises SettingsError naming the variable for a value it cannot parse."""
    with pytest.raises(SettingsError) as info:
        Settings().with_overrides(overrides)
    assert env in str(info.value)
    assert "accepted values" in str(info.value)


@pytest.mark.parametrize("attr", sorted(RUNTIME_ATTRS))
def test_every_runtime_setting_has_a_variable(attr: str) -> None:
    """Each runtime setting is backed by a variable, so with_overrides can parse it."""
    assert attr in {var.attr for var in VARIABLES}


def test_runtime_view_lists_runtime_settings() -> None:
    """runtime_view returns exactly the runtime settings with their current values."""
    settings = Settings(level="basic", sampling_rate=0.5)
    view = settings.runtime_view()
    assert set(view) == RUNTIME_ATTRS
    assert (view["level"], view["sampling_rate"]) == ("basic", 0.5)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"redis://user:{PASSWORD}@cache:6379/0", "redis://user:***@cache:6379/0"),
        (
            f"rediss://default:{PASSWORD}@cache.example.com:6380/1",
            "rediss://default:***@cache.example.com:6380/1",
        ),
        (f"redis://:{PASSWORD}@cache:6379/0", "redis://:***@cache:6379/0"),
        (f"redis://user:{PASSWORD}@cache/2", "redis://user:***@cache/2"),
        (
            f"rediss://user:{PASSWORD}%40x@cache:6380/0?ssl_cert_reqs=none",
            "rediss://user:***@cache:6380/0?ssl_cert_reqs=none",
        ),
        (f"redis://user:{PASSWORD}@[::1]:6379/0", "redis://user:***@[::1]:6379/0"),
    ],
)
def test_redact_url_hides_password(url: str, expected: str) -> None:
    """redact_url replaces the password with *** and keeps the rest of the URL."""
    redacted = redact_url(url)
    assert PASSWORD not in redacted
    assert redacted == expected


@pytest.mark.parametrize(
    "url",
    [
        "redis://cache:6379/0",
        "rediss://cache.example.com:6380/1",
        "redis://user@cache:6379/0",
        "redis://127.0.0.1:6379",
        "unix:///tmp/redis.sock",
    ],
)
def test_redact_url_leaves_password_less_url_alone(url: str) -> None:
    """redact_url returns a URL without a password unchanged."""
    assert redact_url(url) == url


@pytest.mark.parametrize("url", [None, ""])
def test_redact_url_of_unset_url_names_embedded_server(url: str | None) -> None:
    """redact_url of an unset URL says the embedded server is used."""
    assert redact_url(url) == "<embedded>"


@pytest.mark.parametrize(
    "settings",
    [
        Settings(redis_url=f"redis://user:{PASSWORD}@cache:6379/0"),
        Settings(redis_url=f"rediss://:{PASSWORD}@cache:6380/0"),
        Settings.from_env({"LLMTAP_REDIS_URL": f"redis://default:{PASSWORD}@cache:6379/0"}),
    ],
    ids=["redis", "rediss", "from_env"],
)
def test_settings_repr_hides_redis_password(settings: Settings) -> None:
    """Neither repr nor str of Settings shows the Redis password."""
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
