"""Signed webhook notifications: the v1 body, its signature, and ``verify`` for subscribers.

A webhook request carries ``X-Llmtap-Timestamp`` (Unix seconds), ``X-Llmtap-Signature:
v1=<hex>`` (HMAC-SHA256 with the receiver's secret over ``"<timestamp>.<body>"``) and
``Idempotency-Key`` (the same for every retry of one notification). :func:`verify` checks the
signature in constant time and rejects timestamps outside the replay window.
:class:`LocalReceiver` is a real HTTP receiver on loopback for the demo, tests and bench.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def iso(ts: float | None) -> str | None:
    """Return a Unix time as ISO 8601 UTC with milliseconds (``2026-01-01T00:00:00.000Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body(alerts: Sequence[Mapping[str, Any]], receiver: str) -> bytes:
    """Return the v1 JSON body for one message: one alert, or a group of them, in order."""
    payload = {
        "version": SCHEMA_VERSION,
        "idempotency_key": idempotency_key(alerts),
        "receiver": receiver,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": [alert_body(alert) for alert in alerts],
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def alert_body(alert: Mapping[str, Any]) -> dict[str, Any]:
    """Return one alert of a v1 body (times as ISO 8601 UTC, ``endsAt`` null while firing)."""
    return {
        "idempotency_key": alert["idempotency_key"],
        "fingerprint": alert["fingerprint"],
        "status": alert["status"],
        "rule": alert["rule"],
        "kind": alert["kind"],
        "severity": alert["severity"],
        "summary": alert["summary"],
        "labels": alert["labels"] or {},
        "values": alert["values"] or {},
        "thresholds": alert["thresholds"] or {},
        "startsAt": iso(alert.get("startsAt")),
        "endsAt": iso(alert.get("endsAt")),
        "sequence": alert["sequence"],
        "command": show_command(alert["fingerprint"]),
    }


def idempotency_key(alerts: Sequence[Mapping[str, Any]]) -> str:
    """Return a message's key: the alert's own (``<fingerprint>:<sequence>``) or, for a group,
    ``group:`` and a hash of its alerts' keys (the same on every retry of the message)."""
    if len(alerts) == 1:
        return str(alerts[0]["idempotency_key"])
    joined = ",".join(str(a["idempotency_key"]) for a in alerts)
    return "group:" + hashlib.sha256(joined.encode()).hexdigest()[:32]


def show_command(fingerprint: str) -> str:
    """Return the CLI command that shows an alert's state and history."""
    return f"llmtap alerts show {fingerprint}"


# --- a real receiver on loopback -------------------------------------------------------

# A responder returns (status, headers) or (status, headers, body); the default body is "ok".
Responder = Callable[["Received"], tuple[Any, ...]]


@dataclass(frozen=True)
class Received:
    """One request a :class:`LocalReceiver` got: when (its clock), path, headers, body."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the decoded JSON body."""
        return json.loads(self.body)


@dataclass
class LocalReceiver:
    """An HTTP server on 127.0.0.1 that records every POST (``with LocalReceiver() as rx:``).

    ``respond`` decides each answer (default 200); ``secret`` makes it verify signatures
    and answer 401 to a bad one. ``accepted`` holds the requests answered 2xx; ``requests``
    every request. ``on_accept`` is called (in the server thread) for each accepted one.
    """

    secret: str | None = None
    respond: Responder | None = None
    on_accept: Callable[[Received], None] | None = None
    requests: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def __enter__(self) -> LocalReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving in a daemon thread; ``url`` is set."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                got = Received(time.time(), self.path, dict(self.headers), self.rfile.read(length))
                status, headers, payload = receiver.handle(got)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(self, got: Received) -> tuple[int, dict[str, str], bytes]:
        """Record a request and return (status, headers, body) for it."""
        answer = self.respond(got) if self.respond else (200, {})
        status, headers = int(answer[0]), dict(answer[1])
        payload = bytes(answer[2]) if len(answer) > 2 else b"ok"
        if status < 300 and self.secret and not self._authentic(got):
            status, headers, payload = 401, {}, b"bad signature"
        with self._lock:
            self.requests.append(got)
            if status < 300:
                self.accepted.append(got)
            self._lock.notify_all()
        if status < 300 and self.on_accept is not None:
            self.on_accept(got)
        return status, headers, payload

    def _authentic(self, got: Received) -> bool:
        try:
            verify(self.secret or "", got.headers, got.body)
        except VerificationError:
            return False
        return True

    def wait(self, count: int, timeout_s: float = 30.0) -> list[Received]:
        """Wait until ``count`` requests were accepted; return them (AssertionError on timeout)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.accepted) >= count, timeout_s):
                raise AssertionError(f"{len(self.accepted)} of {count} notifications arrived")
            return list(self.accepted)

    def alerts(self) -> Iterator[dict[str, Any]]:
        """Yield the decoded bodies of the accepted requests."""
        for got in list(self.accepted):
            yield got.json()
