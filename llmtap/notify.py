"""Documents one process writes to Redis and another reads: the outbox message and the heartbeat.

An entry of ``llmtap:notify`` is an outbox message: its kind (``alert`` or ``report``), its
version and its JSON payload; the alert state's Lua writes it with the field names given here,
and the notifier decodes it here. Every long-running worker (consumers, the notifier, the
reports scheduler) refreshes a heartbeat key; ``llmtap worker health``, ``llmtap status`` and
the read side decode it here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec

HEARTBEAT_VERSION = 1

OUTBOX_VERSION: Final = 1
KINDS: Final = ("alert", "report")
FIELD_MESSAGE: Final = "n"  # the JSON payload
FIELD_KIND: Final = "k"  # absent in entries written before version 1: an alert
FIELD_VERSION: Final = "v"  # absent likewise: version 1
FIELD_FINGERPRINT: Final = "fp"  # alerts only: which fingerprint the entry moved


class OutboxError(ValueError):
    """An outbox entry that is not a message this version can deliver; ``raw`` is its payload."""

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


@dataclass(frozen=True)
class OutboxMessage:
    """One notification to deliver: ``kind`` (alert or report) and its JSON ``payload``."""

    kind: str
    payload: dict[str, Any]
    version: int = OUTBOX_VERSION


def encode_message(message: OutboxMessage) -> dict[str, str]:
    """Return the stream fields of ``message`` (for XADD to ``keys.NOTIFY``)."""
    body = json.dumps(message.payload, separators=(",", ":"))
    fields = {FIELD_MESSAGE: body, FIELD_KIND: message.kind, FIELD_VERSION: str(message.version)}
    if message.kind == "alert" and "fingerprint" in message.payload:
        fields[FIELD_FINGERPRINT] = str(message.payload["fingerprint"])
    return fields


def decode_message(fields: Mapping[bytes, bytes]) -> OutboxMessage:
    """Return the message in an outbox entry's fields.

    Raises OutboxError (with the payload bytes) for an unknown kind or version, or a payload
    that is not a JSON object.
    """
    raw = fields.get(FIELD_MESSAGE.encode(), b"")
    kind = fields.get(FIELD_KIND.encode(), b"alert").decode(errors="replace")
    version = fields.get(FIELD_VERSION.encode(), str(OUTBOX_VERSION).encode())
    if kind not in KINDS:
        raise OutboxError(f"unknown outbox kind {kind[:32]!r}", raw)
    if version != str(OUTBOX_VERSION).encode():
        raise OutboxError(f"unknown outbox version {version[:16]!r}", raw)
    try:
        payload = json.loads(raw)
    except ValueError:
        raise OutboxError("undecodable outbox entry", raw) from None
    if not isinstance(payload, dict):
        raise OutboxError("undecodable outbox entry", raw)
    return OutboxMessage(kind, payload)


def alert_step_fields() -> dict[str, Any]:
    """Return what the alert step's Lua needs to write an alert message (field names, kind,
    version), merged into each step's input so Lua and Python agree on one definition."""
    return {
        "f_msg": FIELD_MESSAGE,
        "f_kind": FIELD_KIND,
        "kind": "alert",
        "f_ver": FIELD_VERSION,
        "ver": OUTBOX_VERSION,
        "f_fp": FIELD_FINGERPRINT,
    }


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A worker's sign of life: when (Unix s), which process, and how much it has done."""

    v: int = HEARTBEAT_VERSION
    ts: float
    pid: int = 0
    processed: int = 0
    held: int = 0  # notifications held for grouping (the notifier)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Heartbeat)


def encode_heartbeat(beat: Heartbeat) -> bytes:
    """Return the JSON document stored under ``keys.heartbeat(group, consumer)``."""
    return _encoder.encode(beat)


def decode_heartbeat(raw: bytes | str) -> Heartbeat | None:
    """Return the heartbeat in ``raw``, or None when it is not one (a foreign or old value)."""
    try:
        return _decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
