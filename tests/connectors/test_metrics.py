"""/metrics from the aggregates: the numbers equal the tool functions', promtool finds nothing
to lint, label caps keep the sums, and a configured token guards the endpoint."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import msgspec
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from llmtap import events, keys, tools
from llmtap.connectors.http import PATH, metrics_app
from llmtap.connectors.prometheus import MetricsConfig
from llmtap.read import query
from llmtap.read.metrics import month_start
from llmtap.testing import Workload
from tests.connectors.conftest import WINDOW_S, exposition, seed_start
from tests.consumer_helpers import burst
from tests.serve.conftest import ServeThread

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Return every sample of an exposition by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by(found: Samples, name: str, label: str) -> dict[str, float]:
    """Return one sample name's values by the value of ``label``."""
    return {dict(labels)[label]: v for (n, labels), v in found.items() if n == name}


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="PROMTOOL NOT INSTALLED (apt-get install prometheus)"
)
def test_promtool_finds_nothing_to_lint(r: redis.Redis, traffic: tuple[Workload, float]) -> None:
    """`promtool check metrics` exits 0 with no output on a scrape of real aggregates."""
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition(r), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == ""


def test_counters_equal_the_tool_functions(r: redis.Redis, traffic: tuple[Workload, float]) -> None:
    """Calls, errors, cost and tokens per model and tenant equal the cost analysis of the month."""
    workload, now = traffic
    found = samples(exposition(r))
    hours = (now - month_start(now)) / 3600 + 1 / 60
    analysis = tools.get_cost_analysis_data(r, hours, now=now)
    assert (
        sum(by(found, "llmtap_calls_total", "gen_ai_request_model").values())
        == workload.truth.calls
    )
    assert analysis["total_calls"] == workload.truth.calls
    cost = by(found, "gen_ai_usage_cost_total", "gen_ai_request_model")
    assert cost == pytest.approx(
        {m: row["cost_usd"] for m, row in analysis["cost_by_model"].items()}
    )
    tenants = by(found, "llmtap_tenant_calls_total", "tenant")
    assert tenants == {t: row["calls"] for t, row in analysis["cost_by_tenant"].items()}
    errors = by(found, "llmtap_provider_errors_total", "gen_ai_provider_name")
    assert sum(errors.values()) == workload.truth.errors
    inputs = {
        dict(labels)["gen_ai_request_model"]: v
        for (n, labels), v in found.items()
        if n == "gen_ai_client_token_usage_sum" and ("gen_ai_token_type", "input") in labels
    }
    assert sum(inputs.values()) == workload.truth.tokens["input"]


def test_quantiles_equal_the_merged_sketches(
    r: redis.Redis, traffic: tuple[Workload, float]
) -> None:
    """Each model's p50/p95/p99 and weighted count equal latency_percentiles over the window."""
    found = samples(exposition(r))
    rows = query.latency_percentiles(r, time.time() - WINDOW_S, time.time(), (0.5, 0.95, 0.99))
    assert rows
    for row in rows:
        labels = {"gen_ai_provider_name": row["backend"], "gen_ai_request_model": row["model"]}
        for q in ("0.5", "0.95", "0.99"):
            key = (
                "gen_ai_client_operation_duration_seconds",
                frozenset({**labels, "quantile": q}.items()),
            )
            assert found[key] == pytest.approx(row[f"p{float(q) * 100:g}"])
        count = ("gen_ai_client_operation_duration_seconds_count", frozenset(labels.items()))
        assert found[count] == pytest.approx(row["weighted_count"])


def test_caps_put_the_rest_in_other_and_keep_the_sums(
    r: redis.Redis, traffic: tuple[Workload, float]
) -> None:
    """With two models and one tenant allowed, the others share "other" and totals are kept."""
    workload, _ = traffic
    found = samples(exposition(r, max_models=2, max_tenants=1))
    calls = by(found, "llmtap_calls_total", "gen_ai_request_model")
    assert len(calls) == 3 and "other" in calls
    assert sum(calls.values()) == workload.truth.calls
    heaviest = sorted(workload.truth.calls_by_model.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
    assert {m: calls[m] for m, _ in heaviest} == dict(heaviest)
    assert set(by(found, "llmtap_tenant_calls_total", "tenant")) <= {"acme", "globex", "other"}
    assert len(by(found, "llmtap_tenant_calls_total", "tenant")) == 2
    models = {
        dict(k)["gen_ai_request_model"] for n, k in found if n.startswith("gen_ai_client_operation")
    }
    assert len(models) <= 3


def test_pipeline_families_report_stream_groups_and_workers(
    r: redis.Redis, traffic: tuple[Workload, float]
) -> None:
    """Stream length, lag 0 and processed counts of the drained groups, and a DLQ of 0."""
    found = samples(exposition(r))
    assert found[("llmtap_stream_length", frozenset())] == r.xlen(keys.EVENTS)
    assert found[("llmtap_dlq_length", frozenset())] == 0
    lag = by(found, "llmtap_consumer_lag", "group")
    assert lag["cost"] == 0 and lag["latency"] == 0
    processed = by(found, "llmtap_consumer_processed_events_total", "group")
    assert processed["cost"] == traffic[0].truth.total_events
    assert set(by(found, "llmtap_workers_alive", "group")) >= {"cost", "latency", "notifier"}


@pytest.fixture
def guarded(r: redis.Redis) -> Iterator[ServeThread]:
    """``llmtap metrics``' app with a token, on loopback."""
    server = ServeThread(metrics_app(r, MetricsConfig(), "s3cret-token")).start()
    yield server
    server.stop()


def test_a_configured_token_is_required(
    guarded: ServeThread, traffic: tuple[Workload, float]
) -> None:
    """Without the bearer token a scrape is 401; with it, 200 and the exposition format."""
    with httpx.Client(base_url=guarded.url, timeout=30) as http:
        assert http.get(PATH).status_code == 401
        assert http.get(PATH, headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = http.get(PATH, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "llmtap_calls_total" in ok.text


def test_redis_down_is_a_503_with_one_line() -> None:
    """A scrape while Redis does not answer is 503 with the reason (Prometheus marks it down)."""
    client = redis.Redis(port=1, socket_connect_timeout=0.5)
    server = ServeThread(metrics_app(client, MetricsConfig(), None)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            got = http.get(PATH)
    finally:
        server.stop()
    assert got.status_code == 503 and "redis unavailable" in got.json()["error"]


def test_error_events_by_type_equal_the_failed_call_events(r: redis.Redis, redis_url: str) -> None:
    """Failed call events with error types, drained by the cost worker, are counted per model,
    provider and tenant (calls without one count under no tenant) and error type; a failure
    naming no type is "unknown"."""
    now = time.time()
    workload = Workload(43, start=seed_start(now), span_s=3600, producer_id="errors-43")
    kinds = ("rate_limit", "timeout", None)
    calls = [workload.call(seed_start(now) + i) for i in range(600)]
    calls = [
        msgspec.structs.replace(c, success=False, error_type=kinds[i % 3]) if i % 4 == 0 else c
        for i, c in enumerate(calls)
    ]
    r.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch(calls)})
    burst(redis_url, ["cost"])
    failed = [c for c in calls if not c.success]
    assert len(failed) >= 150
    found = samples(exposition(r))
    for name, label, of in (
        ("llmtap_error_events_total", "gen_ai_request_model", lambda c: c.model_name),
        ("llmtap_provider_error_events_total", "gen_ai_provider_name", lambda c: c.backend),
        ("llmtap_tenant_error_events_total", "tenant", lambda c: c.tenant),
    ):
        want = Counter((of(c), c.error_type or "unknown") for c in failed if of(c) is not None)
        got = {
            (dict(labels)[label], dict(labels)["error_type"]): v
            for (n, labels), v in found.items()
            if n == name
        }
        assert got == want, name
