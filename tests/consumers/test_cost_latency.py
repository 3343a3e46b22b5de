"""What the cost and latency workers write: top calls, TTLs, producer stats, weights, settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import redis

from llmtap import events, keys
from llmtap.consumers.cost import CostProcessor
from llmtap.consumers.latency import LatencyProcessor, tokens_per_s
from llmtap.consumers.runtime.config import Retention, RuntimeConfig
from llmtap.settings import SettingsError
from llmtap.testing import Workload
from tests.consumer_helpers import DAY, burst
from tests.factories import call_event, rollup_event

T0 = 1_767_225_600.0


def call(i: int, **fields: object) -> events.CallEvent:
    """A valid call event at ``T0 + i`` with overridable fields."""
    return call_event(
        **{"call_id": f"c{i}", "start_time": T0 + i, "end_time": T0 + i + 1.0, **fields}
    )


def test_top_calls_keep_the_n_most_expensive_of_the_day(r: redis.Redis, redis_url: str) -> None:
    """The day's sorted set holds exactly the N most expensive call events, with details."""
    workload = Workload(41)
    workload.write(r, 8_000)
    burst(redis_url, ["cost"], top_n=10, flush_events=1_000)
    expected = sorted(workload.truth.costs_of_calls, reverse=True)[:10]
    stored = r.zrevrange(keys.top_calls(DAY), 0, -1, withscores=True)
    assert [json.loads(member)["call_id"] for member, _ in stored] == [c for _, c in expected]
    assert [score for _, score in stored] == [cost for cost, _ in expected]
    assert set(json.loads(stored[0][0])) >= {"call_id", "model", "session", "cost_usd"}


def test_buckets_expire_after_their_retention(r: redis.Redis, redis_url: str) -> None:
    """Minute, hour and day hashes get the TTL of their granularity."""
    Workload(42).write(r, 500)
    burst(redis_url)
    minute = keys.bucket("m", T0)
    assert 0 < r.ttl(keys.cost("m", minute)) <= keys.DEFAULT_TTL_S["m"]
    assert keys.DEFAULT_TTL_S["m"] < r.ttl(keys.usage("h", keys.bucket("h", T0)))
    assert keys.DEFAULT_TTL_S["h"] < r.ttl(keys.latency_index("d", DAY))
    assert 0 < r.ttl(keys.dedup(keys.GROUP_COST, keys.bucket("h", T0))) <= keys.DEDUP_TTL_S


def test_producer_stats_keep_the_latest_rollup(r: redis.Redis, redis_url: str) -> None:
    """The producer hash holds the stats of its highest seq, whatever the processing order."""
    workload = Workload(43)
    newer, older = workload.rollup(T0 + 10), workload.rollup(T0)
    newer.seq, older.seq = 9, 8
    r.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(newer)})
    burst(redis_url, ["cost"])
    r.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(older)})
    burst(redis_url, ["cost"])
    stored = r.hgetall(keys.producer(workload.producer_id))
    assert stored[b"seq"] == b"9"
    assert stored[b"profiled_calls"] == str(newer.stats.profiled_calls).encode()


def test_latency_weights_count_every_call_the_sample_stands_for(
    r: redis.Redis, redis_url: str
) -> None:
    """Events sampled at 10% weigh 10: weighted count is 10x the event count."""
    batch = [call(i, sample_rate=0.1, ttft=0.25, output_tokens=75) for i in range(50)]
    r.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch(batch)})
    burst(redis_url, ["latency"])
    stored = r.hgetall(keys.latency("h", keys.bucket("h", T0), "openai", "gpt-4o"))
    assert int(stored[b"latency:n"]) == 50
    assert float(stored[b"latency:w"]) == pytest.approx(500.0)
    assert float(stored[b"latency:sum"]) == pytest.approx(500.0)
    assert float(stored[b"tps:sum"]) / float(stored[b"tps:w"]) == pytest.approx(100.0)
    assert b"network:n" not in stored  # unknown timings are not counted


def test_processors_write_nothing_when_empty() -> None:
    """A processor with nothing folded produces no writes."""
    for processor in (CostProcessor(), LatencyProcessor()):
        writes = processor.writes()
        assert not (writes.ints or writes.floats or writes.top or writes.latest)


def test_retention_and_runtime_settings_come_from_the_environment() -> None:
    """LLMTAP_RETENTION_* and worker variables are read and validated, naming the variable."""
    retention = Retention.from_env({"LLMTAP_RETENTION_MINUTE_S": "3600"})
    assert retention.ttl("m") == 3600 and retention.ttl("d") == keys.DEFAULT_TTL_S["d"]
    with pytest.raises(SettingsError, match="LLMTAP_RETENTION_HOUR_S"):
        Retention.from_env({"LLMTAP_RETENTION_HOUR_S": "soon"})
    assert RuntimeConfig.from_env({"LLMTAP_CLAIM_IDLE_S": "2.5"}).claim_idle_s == 2.5
    with pytest.raises(SettingsError, match="LLMTAP_WORKER_ENGINE"):
        RuntimeConfig.from_env({"LLMTAP_WORKER_ENGINE": "celery"})


@pytest.mark.parametrize(
    ("latency", "ttft", "output_tokens"),
    [(2.0, None, 100), (2.0, 0.5, 30), (1.0, 1.0, 10), (3.0, None, 0), (0.0, None, 5)],
)
def test_vectorised_tokens_per_s_matches_the_event_property(
    latency: float, ttft: float | None, output_tokens: int
) -> None:
    """The latency worker's column formula agrees with CallEvent.output_tokens_per_s."""
    event = call(0, latency=latency, ttft=ttft, output_tokens=output_tokens)
    column = tokens_per_s(
        np.array([float(output_tokens)]),
        np.array([latency]),
        np.array([np.nan if ttft is None else ttft]),
    )[0]
    expected = event.output_tokens_per_s
    assert (np.isnan(column) and expected is None) or column == expected


def test_the_producer_hash_keeps_the_settings_a_rollup_reports(
    r: redis.Redis, redis_url: str
) -> None:
    """The cost worker stores a rollup's reported settings beside its statistics, and leaves
    them out when a producer does not send them."""
    stats = events.ProducerStats(total_calls=3, enabled=True, level="basic", sampling_rate=0.25)
    reporting = rollup_event(producer_id="p-new", stats=stats)
    silent = rollup_event(producer_id="p-old", stats=events.ProducerStats(total_calls=2))
    r.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch([reporting, silent])})
    burst(redis_url, ["cost"])
    new = r.hgetall(keys.producer("p-new"))
    assert (new[b"enabled"], new[b"level"], new[b"sampling_rate"]) == (b"true", b"basic", b"0.25")
    assert new[b"total_calls"] == b"3"
    old = r.hgetall(keys.producer("p-old"))
    assert old[b"total_calls"] == b"2" and not {b"enabled", b"level", b"sampling_rate"} & set(old)
