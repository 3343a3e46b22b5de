"""The connectors' commands and settings: bad values stop them at start with one line naming
the variable, and a metrics process on a non-loopback address needs a token."""

from __future__ import annotations

import pytest
import redis

from llmtap.cli.main import main
from llmtap.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("env", "raw"),
    [
        ("LLMTAP_METRICS_MAX_MODELS", "-1"),
        ("LLMTAP_METRICS_MAX_TENANTS", "many"),
        ("LLMTAP_METRICS_MAX_PROVIDERS", "1.5"),
        ("LLMTAP_METRICS_QUANTILE_WINDOW_S", "10"),
    ],
)
def test_a_bad_metrics_setting_names_its_variable(env: str, raw: str) -> None:
    """Each LLMTAP_METRICS_* variable rejects a bad value, naming itself and what it accepts."""
    with pytest.raises(SettingsError, match=f"{env}=.*accepted values"):
        Settings.from_env({env: raw})


def test_metrics_on_another_address_needs_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``llmtap metrics --host 0.0.0.0`` without LLMTAP_API_TOKEN exits 2 with one line."""
    monkeypatch.delenv("LLMTAP_API_TOKEN", raising=False)
    assert main(["metrics", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "requires LLMTAP_API_TOKEN" in capsys.readouterr().err


def test_otel_worker_without_an_endpoint_stops_at_start(
    r: redis.Redis,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``llmtap worker otel`` with no LLMTAP_OTLP_ENDPOINT prints one line and exits 2."""
    monkeypatch.delenv("LLMTAP_OTLP_ENDPOINT", raising=False)
    assert main(["worker", "otel", "--burst", "--url", redis_url]) == 2
    err = capsys.readouterr().err
    assert "LLMTAP_OTLP_ENDPOINT" in err and "Traceback" not in err
