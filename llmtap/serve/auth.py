"""The bearer-token check of ``llmtap serve``'s requests (``LLMTAP_API_TOKEN``; which binds need
one is :mod:`llmtap.listen`)."""

from __future__ import annotations

import hmac
from typing import Final

from starlette.requests import Request

# The Host headers a loopback listener accepts (DNS-rebinding protection).
LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed(request: Request, token: str | None) -> bool:
    """True when no token is configured or the request carries it as a bearer token."""
    if not token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)
