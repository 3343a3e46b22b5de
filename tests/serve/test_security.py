"""Security by default: loopback unless a token is set, the bearer token on every API request
when it is, no CORS unless configured, and no secret in any page or response."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from llmtap.cli.main import main
from llmtap.serve.app import OPENAPI_PATH, create_app
from llmtap.serve.redact import secrets_in
from llmtap.serve.routes import ENDPOINTS
from tests.serve.conftest import Seeded, ServeThread

TOKEN = "t0ken-" + "x" * 20


@pytest.fixture
def guarded(r: redis.Redis) -> Iterator[httpx.Client]:
    """The app with a token, served on loopback."""
    server = ServeThread(create_app(r, token=TOKEN)).start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
    server.stop()


def test_binding_another_address_without_a_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`llmtap serve --host 0.0.0.0` without LLMTAP_API_TOKEN exits 2 with one line."""
    monkeypatch.delenv("LLMTAP_API_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["llmtap: serve: binding 0.0.0.0 requires LLMTAP_API_TOKEN (a bearer token)"]


def test_with_a_token_every_api_request_needs_it(guarded: httpx.Client) -> None:
    """No token or a wrong one: 401 JSON on reads and writes; the right one: 200."""
    for path in ("/api/v1/dashboard", "/api/v1/status"):
        assert guarded.get(path).status_code == 401
        wrong = guarded.get(path, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "error" in wrong.json()
        right = guarded.get(path, headers={"authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200
    write = guarded.post("/api/v1/reset", json={"confirm": True})
    assert write.status_code == 401
    assert guarded.get("/healthz").status_code == 200  # compose's check needs no token


def test_no_cors_unless_configured(r: redis.Redis, http: httpx.Client) -> None:
    """A cross-origin request gets no CORS grant by default; a configured origin does."""
    origin = {"origin": "https://evil.example"}
    assert "access-control-allow-origin" not in http.get("/api/v1/status", headers=origin).headers
    pre = http.options("/api/v1/reset", headers={**origin, "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    server = ServeThread(create_app(r, cors_origins=["https://ok.example"])).start()
    try:
        got = httpx.get(f"{server.url}/api/v1/status", headers={"origin": "https://ok.example"})
        assert got.headers["access-control-allow-origin"] == "https://ok.example"
    finally:
        server.stop()


def test_a_loopback_server_refuses_foreign_host_names(r: redis.Redis) -> None:
    """With allowed_hosts (what `llmtap serve` sets on loopback) a rebinding Host is refused."""
    server = ServeThread(create_app(r, allowed_hosts=["127.0.0.1", "localhost"])).start()
    try:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert (
            httpx.get(f"{server.url}/healthz", headers={"host": "evil.example"}).status_code == 400
        )
    finally:
        server.stop()


def _paths(fingerprint: str, session: str) -> list[str]:
    out = ["/", "/static/app.js", "/static/index.html", OPENAPI_PATH, "/healthz"]
    for endpoint in ENDPOINTS:
        if endpoint.method != "GET":
            continue
        path = endpoint.path.replace("{session_id}", session).replace("{fingerprint}", fingerprint)
        out.append(path)
    out += [f"/api/v1/report?format={f}" for f in ("md", "html", "json", "csv")]
    return out


def test_no_secret_appears_in_any_page_or_response(
    r: redis.Redis, redis_url: str, seeded: Seeded
) -> None:
    """With a password in the Redis URL, webhook secrets and a Slack token in the environment,
    no page, response or error (even one echoing a bad argument) contains any of them."""
    password = secrets.token_hex(12)
    user = "serve-test"
    r.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                  commands=["+@all"])  # fmt: skip
    parts = urlsplit(redis_url)
    url = f"redis://{user}:{password}@{parts.hostname}:{parts.port}/0"
    environ = {
        "LLMTAP_REDIS_URL": url,
        "LLMTAP_ALERT_WEBHOOK_URL": "https://hooks.example/a",
        "LLMTAP_ALERT_WEBHOOK_SECRET": "whsec-" + secrets.token_hex(8),
        "LLMTAP_REPORT_WEBHOOK_SECRET": "rwsec-" + secrets.token_hex(8),
        "LLMTAP_SLACK_BOT_TOKEN": "xoxb-" + secrets.token_hex(8),
        "LLMTAP_API_TOKEN": TOKEN,
    }
    hidden = [password, *(v for k, v in environ.items() if "SECRET" in k or "TOKEN" in k)]
    client = redis.Redis.from_url(url)
    server = ServeThread(create_app(client, token=TOKEN, secrets=secrets_in(environ))).start()
    auth = {"authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers=auth) as http:
            fp = http.get("/api/v1/alerts").json()["firing"][0]["fingerprint"]
            bodies = [http.get(p) for p in _paths(fp, "s-1")]
            assert all(b.status_code == 200 for b in bodies), [b.url for b in bodies if b.is_error]
            bodies.append(http.get(f"/api/v1/cost?hours_back={password}"))  # echoed, then masked
            bodies.append(http.get(f"/api/v1/sessions/{environ['LLMTAP_SLACK_BOT_TOKEN']}"))
            bodies.append(http.post("/api/v1/configure", json={"level": password}))
        for body in bodies:
            for secret in hidden:
                assert secret not in body.text, f"{body.url} shows a secret"
                assert secret not in str(body.headers)
    finally:
        server.stop()
        client.close()
        r.acl_deluser(user)
