"""Silences (Redis keys that expire at their end, plus an index sorted by end time) and one
alert's full state, whose labels a silence matches: for ``llmtap alerts`` and the HTTP API."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any, Final

import redis

from llmtap import aggregates, keys

#: The longest silence anyone may create (CLI, HTTP API, MCP): a longer mute belongs in the
#: rules file, where it is reviewed, not in a key that quietly hides alerts for months.
MAX_SILENCE_S: Final = 30 * 86_400


def create_silence(
    client: redis.Redis,
    matchers: Mapping[str, str],
    duration_s: float,
    now: float,
    comment: str = "",
    created_by: str = "",
) -> dict[str, Any]:
    """Store a silence from ``now`` for ``duration_s``; return it.

    Raises ValueError without matchers or with a duration that is not positive or exceeds
    :data:`MAX_SILENCE_S`.
    """
    if not matchers:
        raise ValueError("a silence needs at least one matcher (label=value)")
    if not 0 < duration_s <= MAX_SILENCE_S:
        raise ValueError(f"a silence lasts more than 0 and at most {MAX_SILENCE_S // 86_400} days")
    silence_id = secrets.token_hex(6)
    ends_at = now + duration_s
    doc: dict[str, Any] = {
        "id": silence_id,
        "matchers": dict(matchers),
        "comment": comment,
        "created_by": created_by,
        "starts_at": now,
        "ends_at": ends_at,
    }
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.silence(silence_id), json.dumps(doc), px=max(1, int(duration_s * 1000)))
    pipe.zadd(keys.SILENCES, {silence_id: ends_at})
    pipe.zremrangebyscore(keys.SILENCES, "-inf", now)
    pipe.execute()
    return doc


def list_silences(client: redis.Redis, now: float) -> list[dict[str, Any]]:
    """Return the silences in force at ``now``, soonest end first."""
    ids: list[bytes] = client.zrangebyscore(keys.SILENCES, now, "+inf")  # type: ignore[assignment]
    if not ids:
        return []
    raw = client.mget([keys.silence(aggregates.text(i)) for i in ids])
    return [json.loads(item) for item in raw if item]


def expire_silence(client: redis.Redis, silence_id: str) -> bool:
    """End a silence now; return False when there was no such silence."""
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.silence(silence_id))
    pipe.zrem(keys.SILENCES, silence_id)
    deleted, _ = pipe.execute()
    return bool(deleted)
