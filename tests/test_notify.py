"""The outbox message codec: what the alert Lua, the reports worker and the notifier agree on."""

from __future__ import annotations

import pytest

from llmtap import notify


def _wire(fields: dict[str | bytes, str | bytes]) -> dict[bytes, bytes]:
    """Return fields as Redis hands them back: bytes both sides."""
    return {
        (k.encode() if isinstance(k, str) else k): (v.encode() if isinstance(v, str) else v)
        for k, v in fields.items()
    }


def test_a_message_round_trips_with_its_kind_and_version() -> None:
    """encode_message then decode_message gives the same kind, version and payload."""
    message = notify.OutboxMessage("report", {"schedule": "daily", "report": {"x": 1.5}})
    fields = _wire(notify.encode_message(message))
    assert fields[b"k"] == b"report" and fields[b"v"] == b"1"
    assert notify.decode_message(fields) == message


def test_an_entry_without_kind_or_version_is_a_version_1_alert() -> None:
    """Entries written before the outbox was versioned decode as version-1 alerts."""
    decoded = notify.decode_message({b"n": b'{"rule":"slow"}', b"fp": b"abc"})
    assert decoded == notify.OutboxMessage("alert", {"rule": "slow"})


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({b"n": b"not json"}, "undecodable"),
        ({b"n": b"[1]"}, "undecodable"),
        ({b"n": b"{}", b"k": b"pigeon"}, "kind"),
        ({b"n": b"{}", b"v": b"2"}, "version"),
    ],
)
def test_a_foreign_entry_raises_with_its_bytes(fields: dict[bytes, bytes], reason: str) -> None:
    """A payload that is not a JSON object, an unknown kind or version raises OutboxError."""
    with pytest.raises(notify.OutboxError, match=reason) as info:
        notify.decode_message(fields)
    assert info.value.raw == fields[b"n"]


def test_the_lua_is_given_the_codec_field_names() -> None:
    """The alert step input names the same fields, kind and version as the codec."""
    given = notify.alert_step_fields()
    assert (given["f_msg"], given["f_kind"], given["f_ver"]) == ("n", "k", "v")
    assert given["ver"] == notify.OUTBOX_VERSION and given["kind"] == "alert"
