"""Webhook signatures: what subscribers check with ``llmtap.webhooks.verify``."""

from __future__ import annotations

import json

import pytest

from llmtap import webhooks

NOW = 1_767_225_600.0
BODY = json.dumps({"fingerprint": "abc", "status": "firing"}).encode()


def signed(secret: str = "s3cret", now: float = NOW, body: bytes = BODY) -> dict[str, str]:
    """Headers as the notifier sends them."""
    return webhooks.signed_headers(secret, body, "abc:1", now)


def test_a_signed_request_verifies_and_returns_the_body() -> None:
    """verify accepts the notifier's own headers and returns the decoded body."""
    assert webhooks.verify("s3cret", signed(), BODY, now=NOW + 10) == json.loads(BODY)


def test_headers_are_matched_case_insensitively() -> None:
    """Frameworks lower-case header names; verify does not care."""
    lower = {k.lower(): v for k, v in signed().items()}
    webhooks.verify("s3cret", lower, BODY, now=NOW)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    """The documented scheme, computed independently, matches the header."""
    import hashlib
    import hmac

    expected = hmac.new(b"s3cret", f"{int(NOW)}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signed()[webhooks.SIGNATURE_HEADER] == f"v1={expected}"


@pytest.mark.parametrize(
    ("secret", "body"),
    [("wrong", BODY), ("s3cret", BODY.replace(b"firing", b"resolved")), ("s3cret", BODY + b" ")],
)
def test_a_wrong_secret_or_tampered_body_is_rejected(secret: str, body: bytes) -> None:
    """Any change to the body, or another secret, fails with BadSignature."""
    with pytest.raises(webhooks.BadSignature):
        webhooks.verify(secret, signed(), body, now=NOW)


@pytest.mark.parametrize("age", [301.0, -301.0, 86400.0])
def test_an_old_or_future_timestamp_is_rejected(age: float) -> None:
    """A timestamp outside the replay window fails with StaleTimestamp, even if signed."""
    with pytest.raises(webhooks.StaleTimestamp):
        webhooks.verify("s3cret", signed(), BODY, now=NOW + age)


def test_the_tolerance_is_configurable() -> None:
    """A wider window accepts an older request."""
    webhooks.verify("s3cret", signed(), BODY, tolerance_s=3600, now=NOW + 1800)


@pytest.mark.parametrize("drop", [webhooks.SIGNATURE_HEADER, webhooks.TIMESTAMP_HEADER])
def test_missing_headers_are_rejected(drop: str) -> None:
    """Without a signature or a timestamp nothing verifies."""
    headers = signed()
    del headers[drop]
    with pytest.raises(webhooks.VerificationError):
        webhooks.verify("s3cret", headers, BODY, now=NOW)


def test_one_matching_signature_of_several_is_enough() -> None:
    """During secret rotation the header may carry several v1 values."""
    headers = signed()
    old = webhooks.sign("old", int(NOW), BODY)
    headers[webhooks.SIGNATURE_HEADER] = f"{old}, {headers[webhooks.SIGNATURE_HEADER]}"
    webhooks.verify("s3cret", headers, BODY, now=NOW)


def test_unsigned_when_the_receiver_has_no_secret() -> None:
    """A receiver without a secret gets the idempotency key and timestamp but no signature."""
    headers = webhooks.signed_headers(None, BODY, "abc:1", NOW)
    assert webhooks.SIGNATURE_HEADER not in headers
    assert headers[webhooks.IDEMPOTENCY_HEADER] == "abc:1"
