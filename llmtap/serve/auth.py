"""The bearer token of ``llmtap serve`` (``LLMTAP_API_TOKEN``), and which binds need one."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Final

from starlette.requests import Request

LOOPBACK_NAMES: Final = ("localhost",)
LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or ``localhost``) is only reachable from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed(request: Request, token: str | None) -> bool:
    """True when no token is configured or the request carries it as a bearer token."""
    if not token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)
