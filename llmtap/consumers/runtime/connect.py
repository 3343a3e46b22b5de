"""Waiting for Redis at start: a worker started while Redis is down or refuses its password
retries with :func:`llmtap.retry.backoff` until it answers, logging (password redacted) at most
one line every :data:`LOG_EVERY_S`, and starts serving as soon as it does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Final
from urllib.parse import urlsplit

from redis.exceptions import RedisClusterException, RedisError

from llmtap.connection import async_client
from llmtap.retry import RetryPolicy, backoff
from llmtap.settings import redact_url

log = logging.getLogger(__name__)

# Forever, from 0.25 s doubling to 2 s: a returning server is served within about 2 s.
START: Final = RetryPolicy(attempts=0, base_s=0.25, cap_s=2.0, jitter=0.2)
LOG_EVERY_S: Final = 5.0


def describe(exc: BaseException, url: str) -> str:
    """Return a one-line reason for ``exc`` with any password of ``url`` masked."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


async def wait_for_redis(
    url: str, stop: asyncio.Event, *, who: str, policy: RetryPolicy = START
) -> bool:
    """Ping ``url`` until it answers; return True then, or False if ``stop`` is set first.

    Every error is retried (unreachable, wrong password, not Redis): a worker outlives the
    outage instead of exiting. ``who`` names the worker in the log lines.
    """
    client = async_client(url, socket_connect_timeout=5, socket_timeout=5)
    attempt, logged = 0, -LOG_EVERY_S
    try:
        while not stop.is_set():
            try:
                await client.ping()
            except (RedisError, RedisClusterException, OSError) as exc:
                attempt += 1
                if time.monotonic() - logged >= LOG_EVERY_S:
                    logged = time.monotonic()
                    log.warning(
                        "%s: redis at %s unavailable (%s); attempt %d, retrying",
                        who,
                        redact_url(url),
                        describe(exc, url),
                        attempt,
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff(attempt, policy, random.random()))
                continue
            if attempt:
                log.info("%s: redis at %s answers after %d attempts", who, redact_url(url), attempt)
            return True
        return False
    finally:
        await client.aclose()
