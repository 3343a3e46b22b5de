"""The compose ``serve`` service: the image's ``llmtap serve``, published on loopback only,
with a healthcheck on /healthz."""

from __future__ import annotations

from tests.compose_helpers import load_compose


def test_serve_service_publishes_on_loopback_and_checks_healthz() -> None:
    """compose's serve runs `llmtap serve` on the container's 0.0.0.0 (token required),
    published on 127.0.0.1 only, and its healthcheck fetches /healthz."""
    service = load_compose()["services"]["serve"]
    assert service["command"][:3] == ["serve", "--host", "0.0.0.0"]
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    check = service["healthcheck"]
    assert "/healthz" in " ".join(check["test"])
    assert {"interval", "timeout", "retries", "start_period"} <= check.keys()
