"""The read side's writes: the runtime settings every producer polls, and the reset.

:func:`effective_settings` is also how every other topic learns the settings in force.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

import redis
from redis.cluster import RedisCluster

from llmtap import aggregates, keys
from llmtap.settings import Settings, SettingsError

# Keys a reset keeps: the runtime settings are configuration, heartbeats belong to live workers.
RESET_KEEPS: Final = (keys.RUNTIME_SETTINGS,)
RESET_KEEP_PREFIXES: Final = (keys.HEARTBEAT_PREFIX,)
_DELETE_CHUNK: Final = 500


def effective_settings(client: redis.Redis, base: Settings | None = None) -> Settings:
    """Return ``base`` (default: the environment) with the runtime-settings hash applied.

    A field that does not validate is skipped, as the producers skip it.
    """
    settings = base or Settings.from_env()
    for name, value in client.hgetall(keys.RUNTIME_SETTINGS).items():
        try:
            settings = settings.with_overrides({aggregates.text(name): aggregates.text(value)})
        except SettingsError:
            continue
    return settings


def configure(
    client: redis.Redis, base: Settings | None, changes: dict[str, bool | float | str | None]
) -> dict[str, Any]:
    """Validate ``changes`` (None values are ignored), write them to the runtime-settings hash
    and return the effective settings. Raises SettingsError, writing nothing, on a bad one."""
    raw = {name: _raw(value) for name, value in changes.items() if value is not None}
    current = effective_settings(client, base)
    updated = current.with_overrides(raw)  # validates before anything is written
    if raw:
        client.hset(keys.RUNTIME_SETTINGS, mapping=dict(raw))  # type: ignore[arg-type]
    return updated.runtime_view()


def _raw(value: bool | float | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def reset(client: redis.Redis, confirm: bool) -> dict[str, Any]:
    """Delete llmtap's aggregates and state and empty its streams, only with ``confirm``.

    Keys are found with SCAN on the ``llmtap:`` prefix; streams are trimmed to zero entries
    (running workers keep their groups); RESET_KEEPS and live heartbeats are kept. Keys and
    stream entries are counted apart: ``keys``/``deleted`` count the keys (streams excluded),
    ``stream_entries``/``deleted_stream_entries`` the entries in the streams.
    """
    found = _reset_targets(client)
    streams = sorted(name for name, kind in found if kind == "stream")
    plain = [name for name, kind in found if kind != "stream"]
    answer: dict[str, Any] = {
        "confirmed": confirm,
        "keys": len(plain),
        "streams": streams,
        "stream_entries": _stream_lengths(client, streams),
        "by_kind": _by_kind(name for name, _ in found),
        "kept": [*RESET_KEEPS, keys.heartbeat_pattern("*")],
    }
    if not confirm:
        return {**answer, "deleted": 0, "deleted_stream_entries": 0,
                "message": "nothing deleted; pass confirm=True"}  # fmt: skip
    deleted, trimmed = _delete(client, plain, streams)
    return {**answer, "deleted": deleted, "deleted_stream_entries": trimmed}


def _stream_lengths(client: redis.Redis, streams: list[str]) -> int:
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
    return sum(int(n) for n in pipe.execute()) if streams else 0


def _by_kind(names: Iterable[str]) -> dict[str, int]:
    kinds = Counter(keys.kind(name) for name in names)
    return dict(sorted(kinds.items()))


def _reset_targets(client: redis.Redis) -> list[tuple[str, str]]:
    names = [
        aggregates.text(n)
        for n in client.scan_iter(match=keys.ALL_KEYS_PATTERN, count=1000)
        if aggregates.text(n) not in RESET_KEEPS
        and not aggregates.text(n).startswith(RESET_KEEP_PREFIXES)
    ]
    if not names:
        return []
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.type(name)
    types = [aggregates.text(t) for t in pipe.execute()]
    return sorted(zip(names, types, strict=True))


def _delete(client: redis.Redis, plain: list[str], streams: list[str]) -> tuple[int, int]:
    """Delete ``plain`` and empty ``streams``; return (keys deleted, stream entries removed)."""
    # A cluster pipeline sends one key per DEL (its keys may lie in any slot).
    chunk = 1 if isinstance(client, RedisCluster) else _DELETE_CHUNK
    pipe = client.pipeline(transaction=False)
    for i in range(0, len(plain), chunk):
        pipe.delete(*plain[i : i + chunk])
    for stream in streams:
        pipe.xtrim(stream, maxlen=0, approximate=False)
    replies = [int(reply) for reply in pipe.execute()]
    chunks = len(replies) - len(streams)
    return sum(replies[:chunks]), sum(replies[chunks:])
