"""Every read gives the same answer on three shards of a real 3+3 Valkey Cluster as on one
Redis holding the same events: status, pipeline health, sessions, insights, cost, report and
the ``/metrics`` endpoint.

The same synthetic entries (three producers, one per shard, sessions shared between them, one
undecodable entry) are written to the cluster's shards and to the single server's one stream,
and both are drained by the cost, latency and sessions workers. Answers are compared exactly,
floats to a relative 1e-9 (a sum of floats added per shard and then over the shards differs in
its last bits from the same sum added in one order). Fields that depend on the deployment and
not on the data are left out, each with its reason where it is.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.cluster import RedisCluster

from llmtap import events, keys, tools
from llmtap.connectors.http import PATH, metrics_app
from llmtap.connectors.prometheus import LlmtapCollector, MetricsConfig
from llmtap.embedded_cluster import EmbeddedCluster
from llmtap.read import admin, health, insights, report, sessions, shards, status
from llmtap.read.metrics import month_start
from llmtap.serve.app import create_app
from llmtap.testing import Workload
from tests.cluster.conftest import SHARDS, cluster_client
from tests.cluster.helpers import assert_same, drain, write_entries
from tests.consumer_helpers import workloads_on_shards
from tests.factories import call_event
from tests.serve.conftest import ServeThread

WORKERS = ("cost", "latency", "sessions")
EVENTS_PER_PRODUCER = 1_500
GARBAGE = {keys.FIELD_EVENT: b"\xc1not msgpack"}
PROMPT = "h-on-every-shard"
# Heartbeats: how many consumers are alive depends on when each worker last beat (they
# expire seconds after a burst ends), not on the data.
LIVE = ("live_consumers", "workers_seen")
# A group's commits: each shard's consumer commits its own batches, so three shards make
# more, smaller commits than one stream for the same entries.
PER_COMMIT = ("commits",)


@dataclass
class Twins:
    """The cluster (3 shards) and the single server (1 shard) holding the same events."""

    rc: redis.Redis
    r: redis.Redis
    since: float
    until: float
    session_ids: tuple[str, ...]
    producers: tuple[str, ...]


@pytest.fixture(scope="module")
def twins(cluster: EmbeddedCluster, redis_url: str) -> Iterator[Twins]:
    """Seed both deployments once for the module (flushed first), drained by the workers."""
    rc, r = cluster_client(cluster.url), redis.Redis.from_url(redis_url)
    assert isinstance(rc, RedisCluster)
    rc.flushall(target_nodes=RedisCluster.PRIMARIES)
    r.flushdb()
    now = time.time()
    start = max(float(month_start(now)), now - 3600 - 120)  # this month: /metrics counts it
    workloads = workloads_on_shards(SHARDS, start=start, span_s=3000)
    for shard, workload in enumerate(workloads):
        entries = [*workload.entries(EVENTS_PER_PRODUCER), repeated_prompt(workload, start)]
        write_entries(rc, keys.events_stream(shard), entries)
        write_entries(r, keys.EVENTS, entries)
    rc.xadd(keys.events_stream(2), GARBAGE)  # type: ignore[arg-type]
    r.xadd(keys.EVENTS, GARBAGE)  # type: ignore[arg-type]
    drain(cluster.url, SHARDS, WORKERS)
    drain(redis_url, 1, WORKERS)
    yield Twins(
        rc=rc,
        r=r,
        since=start - 60,
        until=time.time(),
        session_ids=("s-1", "s-2", "s-3"),
        producers=tuple(sorted(w.producer_id for w in workloads)),
    )
    rc.close()
    r.close()


def repeated_prompt(workload: Workload, at: float) -> dict[bytes, bytes]:
    """One call of the prompt every producer sends once: once per shard, a repeat in all."""
    call = call_event(
        call_id=f"{workload.producer_id}-prompt", producer_id=workload.producer_id,
        start_time=at, estimated_cost_usd=0.01, prompt_hash=PROMPT,
    )  # fmt: skip
    return {keys.FIELD_BATCH: events.encode_batch([call])}


def without(doc: Any, names: tuple[str, ...]) -> Any:
    """``doc`` with every key in ``names`` removed, at any depth."""
    if isinstance(doc, dict):
        return {k: without(v, names) for k, v in doc.items() if k not in names}
    if isinstance(doc, list):
        return [without(v, names) for v in doc]
    return doc


def test_the_cluster_really_holds_three_shards(twins: Twins) -> None:
    """The sessions, producers and streams are spread over every shard of the cluster (so
    the comparisons below read three shards, not one)."""
    rc = twins.rc
    assert shards.shard_count(rc) == SHARDS and shards.shard_count(twins.r) == 1
    for shard in range(SHARDS):
        assert rc.exists(keys.on_shard(keys.session("s-1"), shard))
        assert rc.exists(keys.on_shard(keys.producer(twins.producers[0]), shard)) == (
            keys.shard_of(twins.producers[0], SHARDS) == shard
        )
        assert rc.xlen(keys.events_stream(shard)) > 0


def test_status_is_the_same(twins: Twins) -> None:
    """Producers, their summed statistics, stream and DLQ lengths, and each group's
    processed, lag and pending are the same on three shards as on one."""
    got = tools.get_profiling_status(twins.rc)
    want = tools.get_profiling_status(twins.r)
    assert [p["producer_id"] for p in got["producers"]] == list(twins.producers)
    assert want["pipeline"]["dlq_length"] == len(WORKERS)  # the garbage entry, once per group
    assert want["pipeline"]["workers"]["cost"]["lag"] == 0
    assert_same(without(got, LIVE), without(want, LIVE))


def test_group_counters_are_the_same(twins: Twins) -> None:
    """``llmtap worker stats``'s counters, lag, pending and consumers per group sum the
    shards'."""
    for group in keys.EVENT_GROUPS:
        got = health.group_stats(twins.rc, group)
        want = health.group_stats(twins.r, group)
        assert without(got, LIVE + PER_COMMIT) == without(want, LIVE + PER_COMMIT), group
    assert health.stream_stats(twins.rc) == health.stream_stats(twins.r)


def test_every_session_is_the_same(twins: Twins) -> None:
    """Each session's summary, usage and timeline (whole, and its newest 50 events) merge
    every shard's part of the session."""
    for session_id in twins.session_ids:
        for limit in (None, 50):
            got = sessions.session_analysis(twins.rc, session_id, limit)
            want = sessions.session_analysis(twins.r, session_id, limit)
            assert want["found"] and want["summary"]["exact"]
            assert_same(got, want, session_id)
        timeline = sessions.session_analysis(twins.r, session_id)["timeline"]
        assert len(timeline) > 100  # the three producers' events, interleaved


def test_the_session_list_is_the_same(twins: Twins) -> None:
    """The sessions by cost (cost analysis and top sessions) are the same."""
    for client in (twins.rc, twins.r):
        assert len(tools.get_cost_analysis_data(client, 2, now=twins.until)["cost_by_session"]) > 0
    got = tools.get_cost_analysis_data(twins.rc, 2, now=twins.until)
    want = tools.get_cost_analysis_data(twins.r, 2, now=twins.until)
    assert got["cost_by_session"] == want["cost_by_session"]
    from llmtap.read import cost

    assert cost.top_sessions(twins.rc, twins.since, twins.until) == cost.top_sessions(
        twins.r, twins.since, twins.until
    )


def test_cost_analysis_is_the_same(twins: Twins) -> None:
    """The whole cost analysis, with the most expensive calls and the month projection."""
    got = tools.get_cost_analysis_data(twins.rc, 2, now=twins.until)
    want = tools.get_cost_analysis_data(twins.r, 2, now=twins.until)
    assert len(want["most_expensive_operations"]) == 10
    assert want["burn_rate"]["month_to_date_usd"] > 0
    assert_same(got, want)


def test_insights_are_the_same(twins: Twins) -> None:
    """The insights' inputs (usage, latency, per-model call details) and their answer,
    anomalies included, are the same."""
    got = insights.insight_inputs(twins.rc, twins.since, twins.until)
    want = insights.insight_inputs(twins.r, twins.since, twins.until)
    assert want.details and all(d.weight > 0 for d in want.details)
    assert_same(got.details, want.details)
    assert [(p.prompt_hash, p.events) for p in got.prompts] == [(PROMPT, SHARDS)]
    assert_same(got.prompts, want.prompts)
    answer = insights.optimization_insights(twins.r, twins.since, twins.until)
    (caching,) = [i for i in answer["recommendations"] if i["category"] == "caching"]
    assert caching["evidence"]["top"] == [{"prompt_hash": PROMPT, "calls": float(SHARDS)}]
    assert answer["anomalies"]
    assert_same(insights.optimization_insights(twins.rc, twins.since, twins.until), answer)
    hours = [keys.bucket_start("h", twins.since) + 3600 * i for i in range(3)]
    means = insights.hourly_latency_means(twins.r, hours)
    assert any(means)
    assert_same(insights.hourly_latency_means(twins.rc, hours), means)


def test_the_report_is_the_same(twins: Twins) -> None:
    """The report model (cost, performance, insights, alerts, cost series, top sessions)."""
    got = report.get_report_data(twins.rc, twins.since, twins.until)
    want = report.get_report_data(twins.r, twins.since, twins.until)
    assert any(want["charts"]["cost_over_time"]["by_model"].values())
    assert_same(got, want)


API_PATHS = (
    "/api/v1/status",
    "/api/v1/pipeline",
    "/api/v1/overview?hours_back=2",
    "/api/v1/cost?hours_back=2",
    "/api/v1/performance?hours_back=2",
    "/api/v1/insights?hours_back=2",
    "/api/v1/sessions/s-2?limit=50",
    "/api/v1/timeseries?hours_back=2",
)


def test_the_http_api_answers_the_same(twins: Twins) -> None:
    """``llmtap serve``'s API (status, pipeline, overview, cost, performance, insights, a
    session, the chart series), over real HTTP at one moment, answers the same."""
    answers = []
    for client in (twins.rc, twins.r):
        server = ServeThread(create_app(client, clock=lambda: twins.until)).start()
        try:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                answers.append([http.get(path).json() for path in API_PATHS])
        finally:
            server.stop()
    got, want = answers
    assert want[API_PATHS.index("/api/v1/cost?hours_back=2")]["total_calls"] > 0
    for path, a, b in zip(API_PATHS, got, want, strict=True):
        assert_same(without(a, LIVE + PER_COMMIT), without(b, LIVE + PER_COMMIT), path)


Samples = dict[str, float]
# The scrape's own duration; live workers (heartbeats, see LIVE).
UNLIKE_METRICS = ("llmtap_scrape_duration_seconds", "llmtap_workers_alive")
# Read at "now": two scrapes a moment apart project the month from different elapsed times.
MOMENT_METRICS = ("llmtap_cost_projected_month_end_usd", "llmtap_cost_burn_rate_usd_per_day")


def samples(text: str, leave_out: tuple[str, ...] = UNLIKE_METRICS) -> Samples:
    """Every sample of an exposition, by name and labels, but those of ``leave_out``."""
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if family.name not in leave_out
    }


def scrape(client: redis.Redis) -> str:
    """One GET /metrics, over real HTTP, of ``client``'s aggregates (a day's quantile window)."""
    server = ServeThread(metrics_app(client, MetricsConfig(quantile_window_s=86_400), None))
    server.start()
    try:
        answer = httpx.get(server.url + PATH, timeout=30)
        answer.raise_for_status()
    finally:
        server.stop()
    return answer.text


def test_the_metrics_endpoint_gives_the_same_values(twins: Twins) -> None:
    """Every sample of /metrics (usage, cost, latency summaries, pipeline, producers) is the
    same on three shards as on one."""
    leave_out = UNLIKE_METRICS + MOMENT_METRICS
    got, want = samples(scrape(twins.rc), leave_out), samples(scrape(twins.r), leave_out)
    assert want["llmtap_stream_length[]"] > 0
    assert want["llmtap_dlq_length[]"] == len(WORKERS)
    assert want["llmtap_producers[]"] == SHARDS
    assert want["llmtap_cost_month_to_date_usd[]"] > 0
    per_shard = {name: v for name, v in got.items() if name.startswith("llmtap_shard_")}
    assert not [name for name in want if name.startswith("llmtap_shard_")]  # one shard
    assert_same({name: v for name, v in got.items() if name not in per_shard}, want)


def test_the_metrics_endpoint_shows_each_shard(twins: Twins) -> None:
    """With several shards /metrics also gives each shard's stream and DLQ lengths and each
    group's lag there (one series per shard and group)."""
    text = scrape(twins.rc)
    if shutil.which("promtool"):  # installed by .ci/run; tests/connectors skips without it
        done = subprocess.run(["promtool", "check", "metrics"], input=text,
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0 and not done.stdout + done.stderr, done.stdout + done.stderr
    got = samples(text)
    for k in range(SHARDS):
        length = got[f"llmtap_shard_stream_length[('shard', '{k}')]"]
        assert length == twins.rc.xlen(keys.events_stream(k))
        dlq = got[f"llmtap_shard_dlq_length[('shard', '{k}')]"]
        assert dlq == (len(WORKERS) if k == 2 else 0)  # the garbage entry went to shard 2
        for group in WORKERS:
            assert got[f"llmtap_shard_consumer_lag[('group', '{group}'), ('shard', '{k}')]"] == 0
    lengths = [v for name, v in got.items() if name.startswith("llmtap_shard_stream_length")]
    assert sum(lengths) == got["llmtap_stream_length[]"]


def test_one_moments_metrics_are_the_same(twins: Twins) -> None:
    """Scraped at the same moment (the collector's clock), even the month projection is."""
    config = MetricsConfig(quantile_window_s=86_400, monthly_budget_usd=100.0)

    def at_until(client: redis.Redis) -> Samples:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LlmtapCollector(client, config, clock=lambda: twins.until))
        return samples(generate_latest(registry).decode())

    want = at_until(twins.r)
    assert want["llmtap_cost_projected_month_end_usd[]"] > 0
    got = {k: v for k, v in at_until(twins.rc).items() if not k.startswith("llmtap_shard_")}
    assert_same(got, want)


def test_reset_empties_every_shard(cluster: EmbeddedCluster, rc: redis.Redis) -> None:
    """``reset_profiling_metrics`` on the cluster deletes every shard's keys and empties every
    shard's stream (last: ``rc`` flushes the cluster the module's fixture seeded)."""
    for shard, workload in enumerate(workloads_on_shards(SHARDS)):
        write_entries(rc, keys.events_stream(shard), list(workload.entries(300)))
    drain(cluster.url, SHARDS, WORKERS)
    done = admin.reset(rc, confirm=True)
    assert done["deleted"] == done["keys"] > 0
    assert sum(rc.xlen(keys.events_stream(k)) for k in range(SHARDS)) == 0
    left = [n.decode() for n in rc.scan_iter(match=keys.ALL_KEYS_PATTERN, count=1000)]
    kept = [n for n in left if n.startswith(keys.HEARTBEAT_PREFIX)]
    assert all(rc.type(n) == b"stream" and rc.xlen(n) == 0 for n in set(left) - set(kept))
    assert status.profiling_status(rc)["statistics"]["producers"] == 0
