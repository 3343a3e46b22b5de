"""Plugin notifications on a real 3+3 Valkey Cluster: a plugin's outbox messages, committed on
three shards, reach a signed webhook once each through the notifier, and no node answers an
error."""

from __future__ import annotations

import asyncio
from collections import Counter

import msgspec
import pytest
import redis

from llmtap import events, keys, webhooks
from llmtap.consumers import registry, service
from llmtap.consumers.notify.notifier import run_notifier
from llmtap.embedded_cluster import EmbeddedCluster
from llmtap.plugin import Worker, confine
from llmtap.testing import LocalReceiver
from tests.alert_helpers import webhook
from tests.cluster.conftest import SHARDS
from tests.cluster.helpers import context
from tests.cluster.test_alerts import errors
from tests.consumer_helpers import workloads_on_shards
from tests.plugins.test_api import Notifier


def test_plugin_notifications_from_three_shards_are_delivered_once(
    cluster: EmbeddedCluster, rc: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed calls on every shard, drained twice by the plugin (the second drain finds
    nothing): each failed call reaches the webhook once, signed, and every shard's count of
    calls is exact."""
    monkeypatch.setitem(
        registry.WORKERS, "notes", confine(Worker.plugin("notes", "", lambda ctx: Notifier()))
    )
    failed: set[str] = set()
    calls = 0
    before = errors(cluster)
    for shard, workload in enumerate(workloads_on_shards(SHARDS)):
        stream = keys.events_stream(shard)
        for i in range(30):
            event = workload.call(workload.start + i)
            if i % 4 == 0:
                event = msgspec.structs.replace(event, success=False, call_id=f"c{shard}-{i}")
            if not event.success:
                failed.add(f"notes:{event.call_id}")
            rc.xadd(stream, {keys.FIELD_EVENT: events.encode(event)})
            calls += 1
    ctx = context(cluster.url, SHARDS)
    for _ in range(2):
        asyncio.run(asyncio.wait_for(service.drain(ctx, ["notes"]), 120))
    with LocalReceiver(secret="s3cret") as rx:
        asyncio.run(
            run_notifier(
                cluster.url, asyncio.Event(), burst=True, receivers=[webhook("ops", rx.url)]
            )
        )
    got = Counter(
        alert["idempotency_key"]
        for request in rx.accepted
        for alert in webhooks.verify("s3cret", request.headers, request.body)["alerts"]
    )
    assert set(got) == failed and set(got.values()) == {1}
    counted = sum(
        int(rc.hget(keys.on_shard(keys.plugin_key("notes", "calls"), k), "n") or 0)
        for k in range(SHARDS)
    )
    assert counted == calls
    assert errors(cluster) == before
