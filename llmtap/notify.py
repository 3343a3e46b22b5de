"""Documents one process writes to Redis and another reads: the heartbeat (versioned).

Every long-running worker (consumers, the notifier, the reports scheduler) refreshes a
heartbeat key; ``llmtap worker health``, ``llmtap status`` and the read side decode it here.
"""

from __future__ import annotations

import msgspec

HEARTBEAT_VERSION = 1


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
