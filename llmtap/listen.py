"""Where llmtap's listeners may bind: loopback by default, anything else only with a bearer token.

One rule for ``llmtap serve`` (its API, dashboard, ``/metrics`` and ``/mcp``), ``llmtap metrics``
and ``llmtap mcp --http``: a listener off loopback without ``LLMTAP_API_TOKEN`` is refused at
start, naming the variable.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from llmtap.settings import SettingsError

TOKEN_ENV: Final = "LLMTAP_API_TOKEN"
LOOPBACK_NAMES: Final = ("localhost",)


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address, ``[::1]`` or ``localhost``) is only reachable from this
    machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def required_token(host: str, token: str | None) -> str | None:
    """Return the token a listener on ``host`` must check: ``token``, or None on loopback
    without one. Raises SettingsError when ``host`` is off loopback and no token is set."""
    if token:
        return token
    if not is_loopback(host):
        raise SettingsError(f"binding {host} requires {TOKEN_ENV} (a bearer token)")
    return None
