"""Secrets that must never leave the server: found in the environment (tokens, webhook secrets,
URL passwords) and replaced in every response body before it is sent."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlsplit

_SECRET_NAME: Final = re.compile(r"(SECRET|TOKEN|PASSWORD|API_KEY)", re.IGNORECASE)
_NOT_SECRET: Final = ("CS_PROFILING_TRACK_TOKENS",)
_MIN_LEN: Final = 6  # shorter values ("true", "1") would blank out ordinary text
MASK: Final = "***"


def secrets_in(environ: Mapping[str, str]) -> list[str]:
    """Return the secret values of ``environ``: variables named like a secret, and passwords
    inside URL values; longest first, so a secret containing another is masked whole."""
    found = set()
    for name, value in environ.items():
        if _SECRET_NAME.search(name) and name not in _NOT_SECRET and len(value) >= _MIN_LEN:
            found.add(value)
        password = _url_password(value)
        if password:
            found.add(password)
    return sorted(found, key=lambda s: (-len(s), s))


def _url_password(value: str) -> str | None:
    if "://" not in value or "@" not in value:
        return None
    try:
        password = urlsplit(value).password
    except ValueError:
        return None
    return password if password and len(password) >= 3 else None


def mask(body: str, secrets: Iterable[str]) -> str:
    """Return ``body`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret in body:
            body = body.replace(secret, MASK)
    return body
