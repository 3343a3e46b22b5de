"""Signed webhook requests: the signature llmtap sends, and ``verify`` for subscribers.

A webhook request carries ``X-Llmtap-Timestamp`` (Unix seconds), ``X-Llmtap-Signature:
v1=<hex>`` (HMAC-SHA256 with the receiver's secret over ``"<timestamp>.<body>"``) and
``Idempotency-Key`` (the same for every retry of one notification). :func:`verify` checks the
signature in constant time and rejects timestamps outside the replay window. The v1 body is
built by the notifier (:mod:`llmtap.consumers.notify.senders`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any, Final

SCHEMA_VERSION: Final = 1
TIMESTAMP_HEADER: Final = "X-Llmtap-Timestamp"
SIGNATURE_HEADER: Final = "X-Llmtap-Signature"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
SCHEMA_HEADER: Final = "X-Llmtap-Schema"
DEFAULT_TOLERANCE_S: Final = 300.0


class VerificationError(ValueError):
    """A webhook request is not authentic or too old; the message says which check failed."""


class BadSignature(VerificationError):
    """The signature header is missing, malformed, or no signature in it matches the body."""


class StaleTimestamp(VerificationError):
    """The timestamp header is missing, malformed, or outside the replay window."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the signature header value ``v1=<hex HMAC-SHA256 of "timestamp.body">``."""
    message = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str | None, body: bytes, key: str, now: float) -> dict[str, str]:
    """Return the headers of one delivery attempt (unsigned when there is no secret)."""
    timestamp = int(now)
    headers = {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: key,
        TIMESTAMP_HEADER: str(timestamp),
        SCHEMA_HEADER: str(SCHEMA_VERSION),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return headers


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a webhook request and return its decoded JSON body.

    ``headers`` is matched case-insensitively. The signature header may hold several
    comma-separated ``v1=`` values (secret rotation); one match is enough. Raises
    :class:`StaleTimestamp` when the timestamp is missing or more than ``tolerance_s`` from
    ``now`` (default: the clock), :class:`BadSignature` when no signature matches.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = _timestamp(lower.get(TIMESTAMP_HEADER.lower()))
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise StaleTimestamp(
            f"timestamp {timestamp} is {current - timestamp:.0f} s from now "
            f"(tolerance {tolerance_s:g} s): a replay or a wrong clock"
        )
    expected = sign(secret, timestamp, body)
    offered = [s.strip() for s in lower.get(SIGNATURE_HEADER.lower(), "").split(",") if s.strip()]
    if not offered:
        raise BadSignature(f"missing {SIGNATURE_HEADER} header")
    if not any(hmac.compare_digest(expected, s) for s in offered):
        raise BadSignature("signature does not match the body (wrong secret or altered body)")
    decoded: dict[str, Any] = json.loads(body)
    return decoded


def _timestamp(raw: str | None) -> int:
    if raw is None:
        raise StaleTimestamp(f"missing {TIMESTAMP_HEADER} header")
    try:
        return int(raw)
    except ValueError:
        raise StaleTimestamp(f"{TIMESTAMP_HEADER} is not an integer: {raw[:32]!r}") from None
