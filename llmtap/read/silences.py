"""Silences: Redis keys that expire at their end, plus an index sorted by end time.

The alerts worker skips a notification whose labels a silence in force matches; the
``llmtap alerts`` commands and the MCP tools create, list and expire them here.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

import redis

from llmtap import keys


def create_silence(
    client: redis.Redis,
    matchers: Mapping[str, str],
    duration_s: float,
    now: float,
    comment: str = "",
    created_by: str = "",
) -> dict[str, Any]:
    """Store a silence from ``now`` for ``duration_s``; return it. ValueError if empty."""
    if not matchers:
        raise ValueError("a silence needs at least one matcher (label=value)")
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
    raw = client.mget([keys.silence(_text(i)) for i in ids])
    return [json.loads(item) for item in raw if item]


def expire_silence(client: redis.Redis, silence_id: str) -> bool:
    """End a silence now; return False when there was no such silence."""
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.silence(silence_id))
    pipe.zrem(keys.SILENCES, silence_id)
    deleted, _ = pipe.execute()
    return bool(deleted)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
