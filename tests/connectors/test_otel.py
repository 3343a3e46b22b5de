"""The otel worker: GenAI metrics (and spans) over OTLP/HTTP to a real loopback receiver that
decodes the protobuf. Names, units, attributes and totals equal the seeded ground truth, and a
receiver that is down, then up, loses nothing."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter

import pytest
import redis

from llmtap import events, keys
from llmtap.connectors.otel_export import OtelConfig, parse_headers
from llmtap.consumers import service
from llmtap.settings import SettingsError
from llmtap.testing import Workload
from tests.connectors.otlp_receiver import OtlpReceiver, Received, attributes
from tests.consumer_helpers import config, wait_for
from tests.serve.conftest import free_socket

SECRET = "dd-api-key-0123456789"


def drain_otel(url: str) -> service.WorkerStats:
    """Drain the stream once with the otel worker (environment from the process)."""
    run = service.run_burst(url, ["otel"], config=config())
    return asyncio.run(asyncio.wait_for(run, 120))["otel"]


def weights(r: redis.Redis) -> tuple[Counter[str], Counter[str]]:
    """Return, per model, the summed weights of the call events and of those with a TTFT."""
    total: Counter[str] = Counter()
    ttft: Counter[str] = Counter()
    for _, fields in r.xrange(keys.EVENTS):
        for item in events.decode_entry(fields):
            if isinstance(item, events.CallEvent):
                total[item.model_name] += round(1 / item.sample_rate)
                if item.ttft is not None:
                    ttft[item.model_name] += round(1 / item.sample_rate)
    return total, ttft


def by_model(received: Received, name: str, value: str = "value") -> Counter[str]:
    out: Counter[str] = Counter()
    for _, point in received.points(name):
        out[attributes(point)["gen_ai.request.model"]] += getattr(point, value)
    return out


@pytest.fixture
def otlp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMTAP_OTLP_HEADERS", f"DD-API-KEY={SECRET},x-extra=1")
    monkeypatch.setenv("LLMTAP_OTLP_SPANS", "true")
    monkeypatch.setenv("LLMTAP_OTLP_TIMEOUT_S", "2")


def test_metrics_and_spans_equal_the_ground_truth(
    r: redis.Redis,
    redis_url: str,
    otlp_env: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Calls, errors, tokens and cost are exact, durations weighted, spans one per event."""
    workload = Workload(61, producer_id="otel-61")
    workload.write(r, 2_000)
    truth = workload.truth
    with OtlpReceiver() as receiver, caplog.at_level(logging.DEBUG):
        monkeypatch.setenv("LLMTAP_OTLP_ENDPOINT", receiver.url)
        stats = drain_otel(redis_url)
    got = receiver.received
    assert stats.processed == truth.total_events
    assert sum(by_model(got, "llmtap.calls", "as_int").values()) == truth.calls
    assert by_model(got, "llmtap.calls", "as_int") == truth.calls_by_model
    assert sum(by_model(got, "llmtap.errors", "as_int").values()) == truth.errors
    cost = sum(by_model(got, "gen_ai.usage.cost", "as_double").values())
    assert cost == pytest.approx(truth.cost_nanousd / 1e9, rel=1e-12)
    tokens: Counter[str] = Counter()
    for metric, point in got.points("gen_ai.client.token.usage"):
        assert metric.unit == "{token}"
        tokens[attributes(point)["gen_ai.token.type"]] += int(point.sum)
    assert tokens == {k: v for k, v in truth.tokens.items()}
    total, ttft = weights(r)
    assert by_model(got, "gen_ai.client.operation.duration", "count") == total
    assert by_model(got, "gen_ai.client.operation.time_to_first_chunk", "count") == ttft
    for metric, point in got.points("gen_ai.client.operation.duration"):
        assert metric.unit == "s" and metric.histogram.aggregation_temporality == 1  # DELTA
        assert point.explicit_bounds[-1] > 3600 and sum(point.bucket_counts) == point.count
        assert {"gen_ai.provider.name", "gen_ai.request.model"} <= set(attributes(point))
    spans = got.spans()
    assert len(spans) == truth.call_events
    failed = [s for s in spans if "error.type" in attributes(s)]
    assert failed and all(s.status.code == 2 for s in failed)
    assert {"gen_ai.usage.input_tokens", "gen_ai.provider.name"} <= set(attributes(spans[0]))
    assert all(h.get("dd-api-key") == SECRET for h in got.headers)
    assert SECRET not in caplog.text


def test_a_receiver_down_then_up_loses_nothing(
    r: redis.Redis,
    redis_url: str,
    otlp_env: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Exports fail while nothing listens (the retry line names the OTLP receiver, not Redis);
    the entries stay pending; once the receiver is up the same unit goes out and every total is
    exact (no loss, no double count)."""
    workload = Workload(62, producer_id="otel-62")
    workload.write(r, 1_500)
    sock = free_socket()
    port = int(sock.getsockname()[1])
    sock.close()  # nothing listens there until the receiver starts
    monkeypatch.setenv("LLMTAP_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    result: list[service.WorkerStats] = []

    def retries() -> list[str]:
        """The worker's own retry lines (the OTel SDK logs retries of its own)."""
        mine = (rec.getMessage() for rec in caplog.records if rec.name.startswith("llmtap"))
        return [m for m in mine if "retrying" in m]

    worker = threading.Thread(target=lambda: result.append(drain_otel(redis_url)))
    worker.start()
    try:
        wait_for(lambda: _pending(r) > 0, deadline_s=60, poll_s=0.05)
        wait_for(retries, deadline_s=60, poll_s=0.05)  # an export failed past its own retries
        assert not r.hgetall(keys.stats(keys.GROUP_OTEL)).get(b"commits")
        with OtlpReceiver(port) as receiver:
            worker.join(120)
    finally:
        worker.join(120)
    assert result and result[0].processed == workload.truth.total_events
    got = receiver.received
    assert sum(by_model(got, "llmtap.calls", "as_int").values()) == workload.truth.calls
    cost = sum(by_model(got, "gen_ai.usage.cost", "as_double").values())
    assert cost == pytest.approx(workload.truth.cost_nanousd / 1e9, rel=1e-12)
    assert len(got.spans()) == workload.truth.call_events
    assert retries() and all(m.startswith("OTLP receiver unavailable") for m in retries())


def _pending(r: redis.Redis) -> int:
    try:
        groups = r.xinfo_groups(keys.EVENTS)
    except redis.ResponseError:
        return 0
    return sum(int(g["pending"]) for g in groups if g["name"] == keys.GROUP_OTEL.encode())


def test_bad_otlp_settings_name_the_variable_and_never_a_header_value() -> None:
    """A missing endpoint, a bad header list and a bad timeout fail naming the variable."""
    with pytest.raises(SettingsError, match="LLMTAP_OTLP_ENDPOINT"):
        OtelConfig.from_env({})
    with pytest.raises(SettingsError, match="LLMTAP_OTLP_HEADERS") as bad:
        parse_headers(f"ok=1,{SECRET}")
    assert SECRET not in str(bad.value)
    with pytest.raises(SettingsError, match="LLMTAP_OTLP_TIMEOUT_S"):
        OtelConfig.from_env({"LLMTAP_OTLP_ENDPOINT": "http://x:4318", "LLMTAP_OTLP_TIMEOUT_S": "0"})
    assert SECRET not in repr(OtelConfig("http://x", {"k": SECRET}))
