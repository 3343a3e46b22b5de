"""The nine tool functions against seeded synthetic traffic: every number equals the ground
truth computed independently from the same events."""

from __future__ import annotations

import csv
import io
import json
import math
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from llmtap import events, keys
from llmtap.events import CallEvent, RollupEvent
from llmtap.producers.profiler import Profiler
from llmtap.read import tools
from llmtap.settings import Settings, SettingsError
from llmtap.testing import Workload
from tests.consumer_helpers import burst

DAY0 = 1_767_225_600  # 2026-01-01T00:00Z
NOW = DAY0 + 7200.0  # the synthetic traffic runs from DAY0 + 3000 s for 20 minutes
WORKERS = ("cost", "latency", "sessions")


@dataclass
class Truth:
    """Ground truth recomputed from the raw events, independently of the workers."""

    calls: list[CallEvent] = field(default_factory=list)
    rollups: list[RollupEvent] = field(default_factory=list)

    def rows(self) -> Iterator[events.RollupRow]:
        """Every rollup row."""
        for rollup in self.rollups:
            yield from rollup.rows

    def cost_by(self, attr: str) -> dict[str, int]:
        """Nano-USD per value of a rollup-row attribute (rows without a value are skipped)."""
        out: Counter[str] = Counter()
        for row in self.rows():
            value = getattr(row, attr)
            if value:
                out[value] += row.cost_nanousd
        return dict(out)

    def sum_rows(self, metric: str, **where: str) -> int:
        """Sum of a row metric over rows matching ``where``."""
        return sum(
            getattr(row, metric)
            for row in self.rows()
            if all(getattr(row, k) == v for k, v in where.items())
        )


@pytest.fixture
def truth(r: redis.Redis, redis_url: str) -> Truth:
    """8k synthetic events (one producer), drained by the cost, latency and sessions workers."""
    workload = Workload(7, start=DAY0 + 3000, span_s=1200)
    found = Truth()
    pipe = r.pipeline(transaction=False)
    for fields in workload.entries(8_000):
        pipe.xadd(keys.EVENTS, fields)  # type: ignore[arg-type]
        for item in events.decode_entry(fields):
            assert not isinstance(item, events.EventError)
            (found.calls if isinstance(item, CallEvent) else found.rollups).append(item)
    pipe.execute()
    burst(redis_url, WORKERS)
    return found


def test_profiling_status_sums_the_producer_statistics(r: redis.Redis, truth: Truth) -> None:
    """total and profiled calls are the last rollup's statistics; the rate is their ratio."""
    last = max(truth.rollups, key=lambda e: e.seq).stats
    status = tools.get_profiling_status(r, Settings())
    stats = status["statistics"]
    assert (stats["total_calls"], stats["profiled_calls"]) == (
        last.total_calls,
        last.profiled_calls,
    )
    assert stats["profiling_rate"] == round(100 * last.profiled_calls / last.total_calls, 2)
    assert stats["producers"] == 1
    assert status["enabled"] is True and status["level"] == "standard"
    assert status["sampling_rate"] == 0.1
    workers = status["pipeline"]["workers"]
    assert workers["cost"]["lag"] == 0 and workers["sessions"]["exists"]


def test_cost_analysis_equals_the_rollups(r: redis.Redis, truth: Truth) -> None:
    """Total, per-backend, per-model, per-tenant and per-session cost are the exact sums."""
    data = tools.get_cost_analysis_data(r, 24, now=NOW)
    total = sum(row.cost_nanousd for row in truth.rows())
    assert data["total_cost_nanousd"] == total
    assert data["total_calls"] == truth.sum_rows("calls")
    for section, attr in [("backend", "backend"), ("model", "model"), ("tenant", "tenant"),
                          ("session", "session")]:  # fmt: skip
        got = {k: v["cost_nanousd"] for k, v in data[f"cost_by_{section}"].items()}
        assert got == {k: v for k, v in truth.cost_by(attr).items() if v}
    model = "gpt-4o"
    tokens = truth.sum_rows("input_tokens", model=model) + truth.sum_rows(
        "output_tokens", model=model
    )
    expected = 1000 * truth.cost_by("model")[model] / 1e9 / tokens
    assert data["cost_per_1k_tokens_by_model"][model] == pytest.approx(expected, rel=1e-12)
    assert data["burn_rate"]["hourly_usd"] == pytest.approx(total / 1e9 / 24, rel=1e-12)


def test_most_expensive_operations_are_the_costliest_call_events(
    r: redis.Redis, truth: Truth
) -> None:
    """The top operations are the ten call events with the highest cost, in order."""
    data = tools.get_cost_analysis_data(r, 24, now=NOW, top_n=10)
    priced = [c for c in truth.calls if c.estimated_cost_usd is not None]
    expected = sorted(priced, key=lambda c: -(c.estimated_cost_usd or 0))[:10]
    got = data["most_expensive_operations"]
    assert [op["call_id"] for op in got] == [c.call_id for c in expected]
    assert [op["cost_usd"] for op in got] == [c.estimated_cost_usd for c in expected]


def test_month_projection_from_a_single_partial_day(r: redis.Redis, truth: Truth) -> None:
    """With only today's spend known, the projection extrapolates today's pace to month end."""
    total = sum(row.cost_nanousd for row in truth.rows()) / 1e9
    burn = tools.get_cost_analysis_data(r, 24, now=NOW)["burn_rate"]
    pace = total / (NOW - DAY0) * 86400
    assert burn["trend_model"] == "today"
    assert burn["month_to_date_usd"] == pytest.approx(total)
    assert burn["projected_month_end_usd"] == pytest.approx(total + pace * (31 - 7200 / 86400))


def test_performance_analysis_counts_and_rates(r: redis.Redis, truth: Truth) -> None:
    """Latency rows count the call events per model; error rates and calls are exact."""
    data = tools.get_performance_analysis(r, 24, now=NOW)
    counts = Counter((c.backend, c.model_name) for c in truth.calls)
    assert {(x["backend"], x["model"]): x["count"] for x in data["latency"]} == dict(counts)
    assert data["overall"]["count"] == len(truth.calls)
    assert data["throughput"]["calls"] == truth.sum_rows("calls")
    by_model = data["error_rates"]["by_model"]
    for model, row in by_model.items():
        calls, errors = truth.sum_rows("calls", model=model), truth.sum_rows("errors", model=model)
        assert (row["calls"], row["errors"]) == (calls, errors)
    ttft = Counter((c.backend, c.model_name) for c in truth.calls if c.ttft is not None)
    assert {(x["backend"], x["model"]): x["count"] for x in data["time_to_first_token"]} == ttft
    backends = {x["backend"] for x in data["backend_comparison"]}
    assert backends == {c.backend for c in truth.calls}
    assert min(x["p95_vs_fastest"] for x in data["backend_comparison"]) == 1.0


def test_network_share_is_the_weighted_mean_split(r: redis.Redis, truth: Truth) -> None:
    """The mean network time per model is the sample-weighted mean of the events'."""
    data = tools.get_performance_analysis(r, 24, now=NOW)["network_vs_processing"]
    sums: defaultdict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for c in truth.calls:
        if c.network_latency is not None:
            acc = sums[c.backend, c.model_name]
            acc[0] += c.network_latency / c.sample_rate
            acc[1] += 1 / c.sample_rate
    for row in data:
        s, w = sums[row["backend"], row["model"]]
        assert row["network_mean_s"] == pytest.approx(s / w, rel=1e-9)


def test_dashboard_sections_and_exact_numbers(r: redis.Redis, truth: Truth) -> None:
    """The dashboard holds the original sections; cost, calls and success rate are exact."""
    dash = tools.get_performance_dashboard(r, 24, include_cache_stats=True, now=NOW)
    assert set(dash) == {"dashboard_metadata", "cost_analysis", "performance", "efficiency",
                         "alerts", "cache_stats"}  # fmt: skip
    meta = dash["dashboard_metadata"]
    assert meta == {"generated_at": "2026-01-01T02:00:00Z", "timeframe_hours": 24,
                    "total_metrics_analyzed": len(truth.calls)}  # fmt: skip
    calls, errors = truth.sum_rows("calls"), truth.sum_rows("errors")
    assert dash["performance"]["success_rate"] == pytest.approx(100 * (calls - errors) / calls)
    total = sum(row.cost_nanousd for row in truth.rows()) / 1e9
    assert dash["cost_analysis"]["total_cost_usd"] == pytest.approx(total, rel=1e-15)
    inputs = truth.sum_rows("input_tokens")
    assert dash["efficiency"]["output_input_ratio"] == truth.sum_rows("output_tokens") / inputs
    assert dash["alerts"]["history_available"] is False


def test_session_analysis_is_exact_and_keeps_the_timeline(r: redis.Redis, truth: Truth) -> None:
    """A session's calls, cost and success rate come from the rollups; its timeline holds
    every call event of the session, oldest first."""
    got = tools.get_session_profiling_analysis(r, "s-2")
    calls = truth.sum_rows("calls", session="s-2")
    errors = truth.sum_rows("errors", session="s-2")
    summary = got["summary"]
    assert got["found"] and summary["total_calls"] == calls
    assert summary["total_cost_usd"] == truth.cost_by("session")["s-2"] / 1e9
    assert summary["success_rate"] == pytest.approx(100 * (calls - errors) / calls)
    mine = [c for c in truth.calls if c.session_id == "s-2"]
    assert [e["call_id"] for e in got["timeline"]] == [
        c.call_id for c in sorted(mine, key=lambda c: (c.start_time, c.call_id))
    ]
    assert got["backend_usage"] == dict(Counter(c.backend for c in mine))
    assert set(got["timeline"][0]) >= {"timestamp", "thread_name", "backend", "model", "cost",
                                       "latency"}  # fmt: skip


def test_unknown_session_is_not_found(r: redis.Redis) -> None:
    """A session nobody saw answers found=false with zero totals."""
    got = tools.get_session_profiling_analysis(r, "nobody")
    assert not got["found"] and got["summary"]["total_calls"] == 0 and got["timeline"] == []


def test_insights_report_money_spent_on_failed_calls(r: redis.Redis, truth: Truth) -> None:
    """The reliability insight of a model states the weighted cost of its failed calls."""
    got = tools.get_optimization_insights(r, 24, now=NOW)
    failed: Counter[str] = Counter()
    for c in truth.calls:
        if not c.success:
            failed[c.model_name] += (c.estimated_cost_usd or 0.0) / c.sample_rate
    reliability = {
        item["evidence"]["model"]: item["estimated_saving_usd"]
        for item in got["recommendations"]
        if item["category"] == "reliability"
    }
    assert reliability == pytest.approx({m: v for m, v in failed.items() if v})
    for item in got["recommendations"]:
        assert {"priority", "category", "recommendation", "potential_improvement",
                "evidence"} <= set(item)  # fmt: skip


def test_repeated_prompts_give_a_caching_insight(r: redis.Redis, redis_url: str) -> None:
    """Five calls of one prompt hash at $0.01 each can save four of them with a cache."""
    calls = [
        events.CallEvent(v=1, call_id=f"c{i}", producer_id="p", backend="openai",
                         model_name="gpt-4o", start_time=DAY0 + i, end_time=DAY0 + i + 1,
                         latency=1.0, success=True, sample_rate=1.0, reason="sampled",
                         estimated_cost_usd=0.01, prompt_hash="h1")
        for i in range(5)
    ]  # fmt: skip
    r.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch(calls)})
    burst(redis_url, ["sessions"])
    got = tools.get_optimization_insights(r, 24, now=DAY0 + 3600)
    (caching,) = [i for i in got["recommendations"] if i["category"] == "caching"]
    assert caching["estimated_saving_usd"] == pytest.approx(0.04)
    assert caching["evidence"]["top"] == [{"prompt_hash": "h1", "calls": 5.0}]


def test_configure_validates_writes_and_returns_the_effective_settings(r: redis.Redis) -> None:
    """A valid change lands in the runtime hash; a bad one raises and writes nothing."""
    got = tools.configure_profiling_settings(r, base=Settings(), sampling_rate=0.2,
                                             track_memory=True)  # fmt: skip
    assert got["sampling_rate"] == 0.2 and got["track_memory"] is True and got["enabled"]
    assert r.hgetall(keys.RUNTIME_SETTINGS) == {b"sampling_rate": b"0.2", b"track_memory": b"true"}
    with pytest.raises(SettingsError):
        tools.configure_profiling_settings(r, base=Settings(), sampling_rate=2.0, level="basic")
    with pytest.raises(SettingsError):
        tools.configure_profiling_settings(r, base=Settings(), max_history=5)
    assert r.hget(keys.RUNTIME_SETTINGS, "level") is None
    assert tools.get_profiling_status(r, Settings())["sampling_rate"] == 0.2


def test_configure_changes_a_running_producers_sampling(redis_url: str, r: redis.Redis) -> None:
    """A producer sampling nothing starts sending call events once sampling_rate is set to 1."""
    profiler = Profiler(Settings(sampling_rate=0.0, settings_poll_s=0.05), redis_url=redis_url)
    profiler.start()
    try:
        tools.configure_profiling_settings(r, base=Settings(), sampling_rate=1.0)
        deadline = time.monotonic() + 10
        while profiler.active_settings.sampling_rate != 1.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert profiler.active_settings.sampling_rate == 1.0
        profiler.wrap(lambda: {"model": "gpt-4o-mini"}, backend="openai", model="gpt-4o-mini")()
        assert profiler.flush()
    finally:
        profiler.close(timeout=2.0)
    sent = [
        item
        for _, fields in r.xrange(keys.EVENTS)
        for item in events.decode_entry(fields)
        if isinstance(item, CallEvent)
    ]
    assert len(sent) == 1


def test_reset_without_confirmation_deletes_nothing(r: redis.Redis, truth: Truth) -> None:
    """Without confirmation every key and stream entry stays, and the answer says what would go."""
    before = {k: r.type(k) for k in r.scan_iter(match="llmtap:*")}
    length = r.xlen(keys.EVENTS)
    got = tools.reset_profiling_metrics(r)
    assert got["confirmed"] is False and got["deleted"] == 0
    assert got["keys"] == len([t for t in before.values() if t != b"stream"])
    assert {k: r.type(k) for k in r.scan_iter(match="llmtap:*")} == before
    assert r.xlen(keys.EVENTS) == length


def test_reset_with_confirmation_deletes_everything_but_settings(
    r: redis.Redis, truth: Truth
) -> None:
    """With confirmation aggregates and state go, streams are emptied, settings stay."""
    r.hset(keys.RUNTIME_SETTINGS, "sampling_rate", "0.5")
    planned = tools.reset_profiling_metrics(r)["keys"]
    got = tools.reset_profiling_metrics(r, confirm=True)
    assert got["confirmed"] and got["deleted"] >= planned
    left = {k.decode() for k in r.scan_iter(match="llmtap:*")}
    assert left == {keys.RUNTIME_SETTINGS, keys.EVENTS}
    assert r.xlen(keys.EVENTS) == 0
    assert tools.get_cost_analysis_data(r, 24, now=NOW)["total_cost_nanousd"] == 0
    assert r.xinfo_groups(keys.EVENTS)  # running workers keep their groups


def test_export_renders_every_format(r: redis.Redis, truth: Truth, tmp_path: Path) -> None:
    """JSON parses with the exact total, CSV rows parse, HTML is well-formed with two SVGs."""
    total = sum(row.cost_nanousd for row in truth.rows()) / 1e9
    as_json = tools.export_performance_report(r, 24, "json", now=NOW)
    model = json.loads(as_json["content"])
    assert model["summary"]["total_cost_usd"] == pytest.approx(total, rel=1e-15)
    assert model["alerts"]["history_available"] is False
    as_csv = tools.export_performance_report(r, 24, "csv", now=NOW)["content"]
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert {"section", "name", "metric", "value"} == set(rows[0])
    by_backend = {
        row["name"]: float(row["value"])
        for row in rows
        if row["section"] == "cost_by_backend" and row["metric"] == "cost_usd"
    }
    assert by_backend == pytest.approx({b: v / 1e9 for b, v in truth.cost_by("backend").items()})
    out = tmp_path / "report.html"
    tools.export_performance_report(r, 24, "html", str(out), now=NOW)
    page = ET.fromstring(out.read_text().removeprefix("<!DOCTYPE html>\n"))
    svgs = page.findall(".//{http://www.w3.org/2000/svg}svg")
    assert len(svgs) == 2
    assert page.findall(".//{http://www.w3.org/2000/svg}polyline")
    assert "No alert history" in out.read_text()
    md = tools.export_performance_report(r, 24, "md", now=NOW)["content"]
    assert md.startswith("# llmtap report") and "## Cost by model" in md


def test_cached_answers_last_the_ttl(r: redis.Redis, truth: Truth) -> None:
    """A second ask within the TTL is served from the cache; after it, recomputed."""
    clock = [NOW]
    cached = tools.ProfilingTools(r, settings=Settings(), clock=lambda: clock[0])
    first = cached.get_cost_analysis_data(24)
    r.flushdb()
    assert cached.get_cost_analysis_data(24) == first
    clock[0] += 61
    assert cached.get_cost_analysis_data(24)["total_cost_nanousd"] == 0
    stats = cached.get_performance_dashboard(24)["cache_stats"]
    assert (stats["hits"], stats["misses"]) == (1, 3)
    assert math.isclose(stats["ttl_s"], 60.0)


def test_alerts_fired_and_resolved_in_the_window_come_from_the_alert_state(
    r: redis.Redis,
) -> None:
    """Alert state hashes give the firing alerts and those fired or resolved in the window."""
    old = {"rule": "cost", "status": "resolved", "starts_at": DAY0 - 9e4, "ends_at": DAY0 + 60}
    r.hset(keys.alert_state("fp-old"), mapping=old)
    r.hset(keys.alert_state("fp-now"), mapping={"rule": "p95", "status": "firing",
                                                "starts_at": DAY0 + 100})  # fmt: skip
    got = tools.alerts_summary(r, DAY0, DAY0 + 3600, Settings())
    assert got["history_available"] is True
    assert [a["fingerprint"] for a in got["firing"]] == ["fp-now"]
    assert [a["fingerprint"] for a in got["fired"]] == ["fp-now"]
    assert [a["fingerprint"] for a in got["resolved"]] == ["fp-old"]
    assert got["thresholds"]["daily_cost_usd"] == 100.0


def test_session_before_its_first_rollup_counts_its_call_events(
    r: redis.Redis, redis_url: str
) -> None:
    """With call events but no rollup yet, the summary counts the events and says it is not
    exact."""
    calls = [
        events.CallEvent(v=1, call_id=f"c{i}", producer_id="p", backend="openai",
                         model_name="gpt-4o", start_time=DAY0 + i, end_time=DAY0 + i + 1,
                         latency=1.0, success=i != 0, sample_rate=1.0, reason="sampled",
                         session_id="early")
        for i in range(4)
    ]  # fmt: skip
    r.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch(calls)})
    burst(redis_url, ["sessions"])
    summary = tools.get_session_profiling_analysis(r, "early")["summary"]
    assert (summary["total_calls"], summary["errors"], summary["exact"]) == (4, 1, False)
    assert summary["success_rate"] == 75.0
