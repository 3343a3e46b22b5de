"""The cost-by-tag plugin against a real (embedded) Valkey: discovered by its entry point,
drained by the llmtap runtime, read back by its read function. Copy and adapt."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import msgspec
import pytest
import redis
from llmtap_cost_by_tag.analyzer import WORKER, CostByTag
from llmtap_cost_by_tag.read import cost_by_tag

from llmtap import events, keys
from llmtap.consumers import registry, service
from llmtap.consumers.runtime.config import RuntimeConfig
from llmtap.embedded import EmbeddedValkey
from llmtap.plugin import Retention, Writes
from llmtap.testing import Workload

START = 1_767_225_600.0  # 2026-01-01T00:00Z


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """An embedded Valkey for this module."""
    with EmbeddedValkey() as server:
        yield server.url


@pytest.fixture
def client(url: str) -> Iterator[redis.Redis]:
    """A client on a flushed database."""
    r = redis.Redis.from_url(url)
    r.flushdb()
    yield r
    r.close()


def tagged(call: events.CallEvent, **tags: str) -> events.CallEvent:
    """Return ``call`` with ``tags``."""
    return msgspec.structs.replace(call, tags=tags)


def test_the_plugin_is_found_by_its_entry_point() -> None:
    """llmtap finds the installed package's worker by name, confined to its prefix."""
    worker = registry.spec("cost-by-tag")
    assert worker.group == WORKER.group == "cost-by-tag"
    assert "cost-by-tag" in registry.plugin_names()


def test_a_call_counts_under_each_of_its_tags() -> None:
    """The fold is pure: one call with two tags adds to both labels in m, h and d."""
    analyzer = CostByTag(Retention())
    call = tagged(Workload(1).call(START), feature="search", team="core")
    analyzer.add_call(call)
    out: Writes = analyzer.writes()
    day = out.ints[keys.plugin_bucket("cost-by-tag", "cost", "d", "20260101")]
    assert day["feature=search|events"] == day["team=core|events"] == 1


def test_cost_per_tag_end_to_end(client: redis.Redis, url: str) -> None:
    """Events written to the stream are drained by the plugin worker and read back per tag."""
    workload = Workload(2)
    calls = [tagged(workload.call(START + i), feature=("a", "b")[i % 2]) for i in range(200)]
    client.xadd(keys.EVENTS, {keys.FIELD_BATCH: events.encode_batch(calls)})
    run = service.run_burst(url, ["cost-by-tag"], config=RuntimeConfig(flush_interval_s=0.1))
    stats = asyncio.run(asyncio.wait_for(run, 60))
    assert stats["cost-by-tag"].processed == 200
    rows = cost_by_tag(client, START, START + 3600)
    for label in ("feature=a", "feature=b"):
        mine = [c for c in calls if f"feature={c.tags['feature']}" == label]
        exact = sum(round(c.estimated_cost_usd * 1e9) for c in mine if c.estimated_cost_usd)
        assert rows[label]["events"] == len(mine)
        assert rows[label]["cost_usd"] == exact / 1e9
