"""The HTTP API on a real uvicorn: every read endpoint answers what the tool functions answer,
writes go through the same code paths as the CLI, and errors are JSON, never tracebacks."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from llmtap import keys, tools
from llmtap.read.bucketcache import BucketCache
from llmtap.read.silences import list_silences
from llmtap.serve.app import OPENAPI_PATH, create_app
from llmtap.serve.routes import ENDPOINTS, today_hours
from tests.consumer_helpers import wait_for
from tests.serve.conftest import Seeded, ServeThread

NOW = 0.0  # replaced per test by the frozen clock's time


def as_json(value: Any) -> Any:
    """``value`` as the API sends it (NaN/inf as null, keys as strings)."""
    text = json.dumps(value, default=str).replace("NaN", "null").replace("Infinity", "null")
    return json.loads(text)


@pytest.fixture
def frozen(r: redis.Redis, seeded: Seeded) -> Iterator[tuple[httpx.Client, float]]:
    """The app with a frozen clock (the seeding time) on loopback, and that time."""
    now = seeded.at
    server = ServeThread(create_app(r, clock=lambda: now, cache_ttl_s=0)).start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, now
    server.stop()


@pytest.mark.parametrize(
    ("path", "tool"),
    [
        ("/api/v1/dashboard?hours_back=24&include_cache_stats=false",
         lambda r, now: tools.get_performance_dashboard(r, 24, False, now=now)),
        ("/api/v1/cost?hours_back=6&top_n=5&monthly_budget_usd=50",
         lambda r, now: tools.get_cost_analysis_data(r, 6, monthly_budget_usd=50, top_n=5,
                                                     now=now)),
        ("/api/v1/performance?hours_back=24",
         lambda r, now: tools.get_performance_analysis(r, 24, now=now)),
        ("/api/v1/insights?hours_back=168",
         lambda r, now: tools.get_optimization_insights(r, 168, now=now)),
        ("/api/v1/sessions/s-1?limit=20",
         lambda r, now: tools.get_session_profiling_analysis(r, "s-1", limit=20)),
        ("/api/v1/sessions/nope", lambda r, now: tools.get_session_profiling_analysis(r, "nope")),
    ],
)  # fmt: skip
def test_read_endpoints_answer_what_the_tool_functions_answer(
    r: redis.Redis, frozen: tuple[httpx.Client, float], path: str, tool: Any
) -> None:
    """Each read endpoint's JSON equals its tool function's result for the same arguments."""
    http, now = frozen
    got = http.get(path)
    assert got.status_code == 200, got.text
    assert got.json() == as_json(tool(r, now))


@pytest.mark.parametrize(
    ("fmt", "media"),
    [("md", "text/markdown"), ("html", "text/html"), ("json", "application/json"),
     ("csv", "text/csv")],
)  # fmt: skip
def test_report_is_served_in_every_format_with_its_media_type(
    r: redis.Redis, frozen: tuple[httpx.Client, float], fmt: str, media: str
) -> None:
    """GET /report?format=... returns export_performance_report's content, as a download when
    asked."""
    http, now = frozen
    got = http.get(f"/api/v1/report?hours_back=24&format={fmt}&download=true")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith(media)
    assert got.headers["content-disposition"].startswith("attachment; filename=")
    assert got.text == tools.export_performance_report(r, 24, fmt, now=now)["content"]


def test_overview_combines_the_tools_numbers(
    r: redis.Redis, frozen: tuple[httpx.Client, float]
) -> None:
    """The overview's today, month and window numbers are the cost and dashboard tools'."""
    http, now = frozen
    got = http.get("/api/v1/overview?hours_back=24&monthly_budget_usd=10").json()
    dash = tools.get_performance_dashboard(r, 24, False, now=now)
    today = tools.get_cost_analysis_data(r, today_hours(now), monthly_budget_usd=10, now=now)
    assert got["today_cost_usd"] == today["total_cost_usd"]
    assert got["month"] == as_json(today["burn_rate"])
    assert got["window"]["calls"] == dash["performance"]["total_calls"] > 0
    assert got["window"]["p95_latency"] == dash["performance"]["p95_latency"]
    assert [a["fingerprint"] for a in got["alerts_firing"]] == [
        a["fingerprint"] for a in dash["alerts"]["firing"]
    ]
    assert got["alerts_firing"][0]["labels"] == {"model": "gpt-4o"}


def test_alerts_list_firing_pending_history_and_silences(
    frozen: tuple[httpx.Client, float],
) -> None:
    """/alerts has the firing alert with its labels and the pending one; history the fired."""
    http, _ = frozen
    got = http.get("/api/v1/alerts").json()
    assert [(a["rule"], a["status"]) for a in got["firing"]] == [("slow", "firing")]
    assert [(a["rule"], a["status"]) for a in got["pending"]] == [("watch", "pending")]
    assert got["silences"] == []
    history = http.get("/api/v1/alerts/history?hours_back=1").json()["alerts"]
    assert {a["rule"] for a in history} == {"slow"}  # pending has not fired yet
    one = http.get(f"/api/v1/alerts/{got['firing'][0]['fingerprint']}").json()
    assert one["doc"]["labels"] == {"model": "gpt-4o"}
    assert http.get("/api/v1/alerts/0000").status_code == 404


def test_pipeline_health_names_every_worker_group(http: httpx.Client, seeded: Seeded) -> None:
    """/pipeline gives the stream and DLQ lengths and each group's lag and counters."""
    got = http.get("/api/v1/pipeline").json()
    assert got["stream_length"] > 0 and got["dlq_length"] == 0
    assert got["groups"]["cost"]["lag"] == 0
    assert got["groups"]["cost"]["processed"] == seeded.workload.truth.total_events


def test_silence_is_created_listed_and_expired_through_the_cli_code_path(
    r: redis.Redis, http: httpx.Client
) -> None:
    """POST /silences stores a silence llmtap.read.silences (the CLI's path) lists; expire ends
    it."""
    body = {"matchers": {"rule": "slow"}, "duration": "2h", "comment": "deploy", "created_by": "me"}
    made = http.post("/api/v1/silences", json=body)
    assert made.status_code == 200, made.text
    stored = list_silences(r, made.json()["starts_at"])
    assert [(s["matchers"], s["comment"]) for s in stored] == [({"rule": "slow"}, "deploy")]
    assert stored[0]["ends_at"] - stored[0]["starts_at"] == 7200
    assert http.get("/api/v1/silences").json()["silences"] == stored
    gone = http.post(f"/api/v1/silences/{stored[0]['id']}/expire")
    assert gone.status_code == 200
    assert http.get("/api/v1/silences").json()["silences"] == []
    assert http.post(f"/api/v1/silences/{stored[0]['id']}/expire").status_code == 404


@pytest.mark.parametrize(
    ("body", "named"),
    [({"matchers": {}}, "matchers"), ({"duration": "2h"}, "matchers"),
     ({"matchers": {"rule": "x"}, "duration": "90d"}, "duration"),
     ({"matchers": {"rule": "x"}, "duration": "soon"}, "duration"),
     ({"matchers": {"rule": "x"}, "until": 3}, "until")],
)  # fmt: skip
def test_a_bad_silence_is_refused_naming_the_field(
    r: redis.Redis, http: httpx.Client, body: dict[str, Any], named: str
) -> None:
    """No matchers, a duration over 30 days or unparsable, or an unknown field: 400, nothing
    stored."""
    got = http.post("/api/v1/silences", json=body)
    assert got.status_code == 400
    assert got.json()["error"].startswith(named)
    assert r.zcard(keys.SILENCES) == 0


def test_configure_validates_like_the_cli_and_writes_only_good_changes(
    r: redis.Redis, http: httpx.Client
) -> None:
    """A good change is written and echoed; a bad value is a 400 naming it, writing nothing."""
    good = http.post("/api/v1/configure", json={"sampling_rate": 0.5, "track_memory": True})
    assert good.status_code == 200
    assert good.json()["sampling_rate"] == 0.5
    bad = http.post("/api/v1/configure", json={"sampling_rate": 7, "level": "basic"})
    assert bad.status_code == 400
    assert "sampling_rate" in bad.json()["error"].lower()  # the settings error names it
    assert r.hget(keys.RUNTIME_SETTINGS, "level") is None
    assert http.post("/api/v1/configure", json=[1]).status_code == 400
    text = http.post("/api/v1/configure", content=b"sampling_rate=1",
                     headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert text.status_code == 400  # JSON only: a cross-site form cannot post here


def test_reset_needs_the_confirmation_field_and_returns_what_it_deleted(
    r: redis.Redis, http: httpx.Client, seeded: Seeded
) -> None:
    """No confirm: 400; confirm false: a preview, nothing deleted; confirm true: deleted."""
    assert http.post("/api/v1/reset", json={}).status_code == 400
    before = r.dbsize()
    preview = http.post("/api/v1/reset", json={"confirm": False}).json()
    assert preview["deleted"] == 0 and preview["keys"] > 0 and r.dbsize() == before
    done = http.post("/api/v1/reset", json={"confirm": True}).json()
    assert done["confirmed"] is True and done["deleted"] >= preview["keys"]
    assert http.get("/api/v1/dashboard").json()["performance"]["total_calls"] == 0


@pytest.mark.parametrize(
    ("query", "named"),
    [("hours_back=abc", "hours_back"), ("hours_back=-1", "hours_back"),
     ("hours_back=nan", "hours_back"), ("top_n=1.5", "top_n"), ("colour=red", "colour")],
)  # fmt: skip
def test_a_bad_argument_is_a_400_naming_it(http: httpx.Client, query: str, named: str) -> None:
    """Bad or unknown query arguments: 400 with {"error": "<name>: ..."}."""
    got = http.get(f"/api/v1/cost?{query}")
    assert got.status_code == 400
    assert got.json()["error"].startswith(f"{named}:")
    assert http.get("/api/v1/report?format=pdf").json()["error"].startswith("format:")


def test_unknown_paths_and_methods_are_json_errors(http: httpx.Client) -> None:
    """An unknown /api path is a JSON 404; a wrong method a JSON 405."""
    missing = http.get("/api/v1/nothing")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong = http.delete("/api/v1/cost")
    assert wrong.status_code in (404, 405) and "error" in wrong.json()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_redis_unreachable_is_a_503_and_healthz_says_so() -> None:
    """With Redis down every read is a JSON 503 and /healthz fails (compose's check)."""
    client = redis.Redis(port=_closed_port(), socket_connect_timeout=1)
    server = ServeThread(create_app(client)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for path in ("/api/v1/dashboard", "/api/v1/status", "/api/v1/alerts"):
                got = http.get(path)
                assert got.status_code == 503
                assert got.json()["error"].startswith("Redis is unreachable")
            assert http.get("/healthz").status_code == 503
    finally:
        server.stop()


def test_an_unexpected_failure_is_a_json_500_without_traceback(
    r: redis.Redis, http: httpx.Client
) -> None:
    """A Redis key of the wrong type breaks a read: the answer is a short JSON 500."""
    r.set(keys.RUNTIME_SETTINGS, "not a hash")
    got = http.get("/api/v1/status")
    assert got.status_code == 500
    assert got.json() == {"error": "internal error (see the server log)"}
    assert "Traceback" not in got.text


def test_healthz_and_openapi_describe_every_endpoint(http: httpx.Client) -> None:
    """/healthz is ok with Redis up; the OpenAPI document lists every endpoint and argument."""
    assert http.get("/healthz").json() == {"status": "ok"}
    doc = http.get(OPENAPI_PATH).json()
    assert doc["openapi"] == "3.1.0"
    for endpoint in ENDPOINTS:
        op = doc["paths"][endpoint.path][endpoint.method.lower()]
        if not endpoint.write:
            assert {p["name"] for p in op["parameters"] if p["in"] == "query"} == {
                p.name for p in endpoint.params
            }


def test_the_dashboard_page_and_its_assets_are_served(http: httpx.Client) -> None:
    """/ is the dashboard, its script, style and icon are local files; no CDN."""
    page = http.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")
    for asset in ("/static/app.js", "/static/app.css", "/static/favicon.svg", "/favicon.ico"):
        assert http.get(asset).status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_llmtap_serve_runs_as_a_process_on_loopback(redis_url: str) -> None:
    """`llmtap serve` starts on 127.0.0.1 and answers /healthz until stopped."""
    port = _closed_port()
    cmd = [
        sys.executable,
        "-m",
        "llmtap.cli.main",
        "serve",
        "--port",
        str(port),
        "--url",
        redis_url,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                return False

        wait_for(up, deadline_s=60, poll_s=0.1)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"serving http://127.0.0.1:{port}/" in out


def test_a_bucket_cache_answers_the_same_and_is_used(r: redis.Redis, seeded: Seeded) -> None:
    """With a BucketCache (what ``llmtap serve`` runs by default), every range endpoint answers
    exactly what the uncached tool functions answer, and the second round reads closed buckets
    from the cache (its hits grow; the dashboard reports them)."""
    now = seeded.at + 2 * 3600  # the seeded buckets are closed by then
    buckets = BucketCache()
    server = ServeThread(create_app(r, clock=lambda: now, cache_ttl_s=0, buckets=buckets)).start()
    paths = {
        "/api/v1/performance?hours_back=24": tools.get_performance_analysis(r, 24, now=now),
        "/api/v1/cost?hours_back=24": tools.get_cost_analysis_data(r, 24, now=now),
        "/api/v1/insights?hours_back=168": tools.get_optimization_insights(r, 168, now=now),
    }
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(2):
                for path, expected in paths.items():
                    assert client.get(path).json() == as_json(expected), path
            hits = buckets.hits
            assert hits > 0 and len(buckets) > 0
            dash = client.get("/api/v1/dashboard?hours_back=24").json()
    finally:
        server.stop()
    assert dash["cache_stats"]["enabled"] is True
    assert dash["cache_stats"]["hits"] > hits
