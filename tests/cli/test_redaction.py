"""``redact_url``: every credential form of a Redis URL is hidden before it is printed."""

from __future__ import annotations

import pytest

from llmtap.settings import redact_url, url_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://default:pw@h:6379/0", "redis://default:***@h:6379/0"),
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user@h:6379/0", "redis://user@h:6379/0"),
        ("redis://u:a/b@h/0", "redis://u:***@h/0"),
        ("redis://h:6379/0?password=pw", "redis://h:6379/0?password=***"),
        ("redis://h/0?db=1&password=p%40ss&x=1", "redis://h/0?db=1&password=***&x=1"),
        ("rediss://h/0?username=bob&password=pw", "rediss://h/0?username=***&password=***"),
        ("rediss://h/0?ssl_password=key-pw", "rediss://h/0?ssl_password=***"),
        ("unix://:pw@/tmp/redis.sock?db=2", "unix://:***@/tmp/redis.sock?db=2"),
        ("unix:///tmp/redis.sock?password=pw", "unix:///tmp/redis.sock?password=***"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        (None, "<embedded>"),
    ],
)
def test_redact_url_hides_every_credential(url: str | None, shown: str) -> None:
    """Userinfo passwords and credential query parameters become ``***``; a lone user name,
    which redis-py reads as a name, stays."""
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("redis://u:pw@h/0", ["pw"]),
        ("redis://h/0?password=p%40ss&username=bob", ["p%40ss", "bob", "p@ss"]),
        ("redis://h/0", []),
    ],
)
def test_url_secrets_lists_what_redaction_hides(url: str, secrets: list[str]) -> None:
    """The credential values (raw and percent-decoded), to scrub messages that quote them."""
    assert sorted(url_secrets(url)) == sorted(secrets)
