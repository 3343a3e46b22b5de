"""The alerts worker on a real 3+3 Valkey Cluster: the same alerts as on one Redis, each
notification once when replicas are SIGKILLed mid-run, and no command across slots."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from llmtap import events, keys
from llmtap.connection import async_client
from llmtap.consumers import service
from llmtap.consumers.alerts.processor import AlertsProcessor
from llmtap.consumers.alerts.rules_file import load_rules
from llmtap.consumers.runtime import engine
from llmtap.consumers.runtime.consumer import Consumer
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.embedded_cluster import EmbeddedCluster
from llmtap.settings import Settings
from tests import contract_helpers
from tests.alert_helpers import call, notifications
from tests.cluster.conftest import SHARDS, cluster_client
from tests.consumer_helpers import config, wait_for
from tests.factories import T0

# "slow": one fingerprint per model, observed many times (repeats suppressed for an hour).
# "failed": one fingerprint per failed call (its session), re-sent on every observation
# (repeat_interval 0): a step applied twice shows as a second notification.
RULES = """rules:
  - {name: slow, kind: latency_above, threshold: 2.0, group_by: [model], repeat_interval: 1h}
  - {name: failed, kind: error, group_by: [session], repeat_interval: 0s}
"""
NO_DEFAULT_RULES = {
    "CS_PROFILING_COST_ALERT": "0",
    "CS_PROFILING_LATENCY_ALERT": "0",
    "CS_PROFILING_MEMORY_ALERT": "0",
}


def producer_of(shard: int) -> str:
    """A producer id that maps to ``shard`` of SHARDS."""
    return next(
        f"p{shard}-{i}" for i in range(1000) if keys.shard_of(f"p{shard}-{i}", SHARDS) == shard
    )


def traffic(per_shard: int, start: float = T0) -> list[tuple[int, events.CallEvent]]:
    """Call events of one producer per shard: every third slow, every fifth failed, each in a
    session of its own; with the shard each one is written to."""
    out = []
    producers = [producer_of(shard) for shard in range(SHARDS)]
    for i in range(per_shard):
        for shard, producer in enumerate(producers):
            failed = i % 5 == 0
            event = call(
                call_id=f"{shard}-{i}",
                producer_id=producer,
                session_id=f"s{shard}-{i}",
                latency=5.0 if i % 3 == 0 else 0.5,
                success=not failed,
                error_type="Boom" if failed else None,
                start_time=start + i,
                end_time=start + i + 1,
                model_name=("gpt-4o", "gpt-4o-mini")[i % 2],
            )
            out.append((shard, event))
    return out


def write(client: redis.Redis, batch: list[tuple[int, events.CallEvent]], shards: int) -> None:
    """XADD each event to its shard's stream (all to shard 0 when ``shards`` is 1)."""
    pipe = client.pipeline(transaction=False)
    for shard, event in batch:
        stream = keys.events_stream(shard if shards > 1 else 0)
        pipe.xadd(stream, {keys.FIELD_EVENT: events.encode(event)})
    pipe.execute()


def alerts_context(url: str, shards: int, rules: Path) -> WorkerContext:
    env = {"LLMTAP_SHARDS": str(shards), "LLMTAP_ALERT_RULES": str(rules), **NO_DEFAULT_RULES}
    return WorkerContext.from_environ(url, env, runtime=config(read_count=20))


def sent(client: redis.Redis) -> Counter[tuple[Any, ...]]:
    """The notifications in the outbox: (rule, labels, status, sequence, startsAt) counted;
    startsAt only where it does not depend on which shard's events came first."""
    return Counter(
        (
            n["rule"],
            json.dumps(n["labels"], sort_keys=True),
            n["status"],
            n["sequence"],
            n["startsAt"] if n["rule"] == "failed" else None,
        )
        for n in notifications(client)
    )


def errors(cluster: EmbeddedCluster) -> int:
    """Commands any running node refused or failed since it started: CROSSSLOT refusals and
    failed executions (a script that touched a key outside its slot fails), less the expected
    ones: NOSCRIPT (an EVALSHA before its script is loaded) and BUSYGROUP (a group that
    exists). (Error replies as such are no measure: each new redis-py connection gets one.)"""
    total = 0
    for port in cluster.ports:
        with redis.Redis(port=port) as node:
            codes: Any = node.info("errorstats")
            commands: Any = node.info("commandstats")

            def count(code: str, stats: Any = codes) -> int:
                return int(stats.get(f"errorstat_{code}", {}).get("count", 0))

            failed = sum(int(row.get("failed_calls", 0)) for row in commands.values())
            total += failed + count("CROSSSLOT") - count("NOSCRIPT") - count("BUSYGROUP")
    return total


def test_three_shards_fire_exactly_what_one_redis_fires(
    cluster: EmbeddedCluster, rc: redis.Redis, r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """The same slow and failed calls, drained by the alerts worker on one Redis and on three
    shards of the cluster, enqueue the same notifications (firing, then resolved by the
    final tick), with no error reply (no CROSSSLOT, no script outside its slot) and no
    control record left to relay."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    batch = traffic(150)
    before = errors(cluster)
    write(r, batch, 1)
    write(rc, batch, SHARDS)
    single = asyncio.run(service.drain(alerts_context(redis_url, 1, rules), ["alerts"]))
    sharded = asyncio.run(service.drain(alerts_context(cluster.url, SHARDS, rules), ["alerts"]))
    assert single["alerts"].processed == sharded["alerts"].processed == len(batch)
    expected = sent(r)
    failed = sum(1 for _, e in batch if not e.success)
    assert sum(expected.values()) == 2 * (failed + 2)  # firing + resolved, per fingerprint
    assert sent(rc) == expected
    assert errors(cluster) == before
    for shard in range(SHARDS):
        outbox = keys.on_shard(keys.control_outbox(keys.GROUP_ALERTS), shard)
        assert rc.xlen(outbox) == 0


def alerts_drained(client: redis.Redis) -> bool:
    """True when the alerts group acknowledged every entry of every shard and every control
    record is relayed."""
    for shard in range(SHARDS):
        stream = keys.events_stream(shard)
        if not client.exists(stream):
            return False
        infos = {info["name"].decode(): info for info in client.xinfo_groups(stream)}
        info = infos.get(keys.GROUP_ALERTS)
        if info is None or info["pending"] or info["lag"]:
            return False
        if client.xlen(keys.on_shard(keys.control_outbox(keys.GROUP_ALERTS), shard)):
            return False
    return True


@pytest.mark.slow
def test_sigkilled_alerts_replicas_send_each_notification_once(
    cluster: EmbeddedCluster, rc: redis.Redis, tmp_path: Path
) -> None:
    """Alerts worker replicas SIGKILLed while three shards fill, replaced by fresh ones: every
    failed call is notified exactly once (no second sequence, no duplicate idempotency key),
    and no node answered an error (CROSSSLOT or a script outside its slot)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    env = {"LLMTAP_ALERT_RULES": str(rules), "LLMTAP_ALERT_TICK_S": "3600", **NO_DEFAULT_RULES}
    # Events of now: the tick (run at each worker's start) finds none of them stale.
    batch = traffic(1_500, start=time.time())
    before = errors(cluster)
    log = tmp_path / "workers.log"
    steady = spawn_alerts(cluster.url, log, env)
    writer = threading.Thread(target=write_slowly, args=(cluster.url, batch), daemon=True)
    writer.start()
    for round_ in range(3):
        victim = spawn_alerts(cluster.url, log, env)
        wait_for(lambda v=victim: contract_helpers.is_reading(rc, v.pid, [keys.GROUP_ALERTS]), 60)
        time.sleep(0.3 + 0.2 * round_)  # let it hold unacknowledged entries and records
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    writer.join()
    wait_for(lambda: alerts_drained(rc), 120)
    steady.send_signal(signal.SIGTERM)
    assert steady.wait(timeout=60) == 0, log.read_text()[-3000:]
    failed = {e.session_id for _, e in batch if not e.success}
    fired = [n for n in notifications(rc) if n["rule"] == "failed"]
    assert Counter(n["idempotency_key"] for n in fired).most_common(1)[0][1] == 1
    assert {n["labels"]["session"] for n in fired} == failed
    assert {n["sequence"] for n in fired} == {1} and len(fired) == len(failed)
    assert [n["status"] for n in notifications(rc) if n["rule"] == "slow"] == ["firing", "firing"]
    assert errors(cluster) == before


def spawn_alerts(url: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """One alerts worker process on the cluster with the tests' short timings and ``env``."""
    sharded = {"LLMTAP_SHARDS": str(SHARDS), **env}
    return contract_helpers.spawn(url, "loop", log, ("worker", "alerts"), sharded)


def write_slowly(url: str, batch: list[tuple[int, events.CallEvent]]) -> None:
    """Write ``batch`` in small slices, so that replicas come and go while it flows."""
    client = cluster_client(url)
    assert isinstance(client, RedisCluster)
    for i in range(0, len(batch), 50):
        write(client, batch[i : i + 50], SHARDS)
        time.sleep(0.01)
    client.close()


def test_a_record_left_by_either_crash_window_is_applied_once(
    cluster: EmbeddedCluster, rc: redis.Redis, tmp_path: Path
) -> None:
    """A consumer that dies right after its commit leaves its control record; another one's
    relay applies it. A relay that dies after applying, before trimming, leaves the record
    applied; the next relay skips it. Either way each failed call is notified once."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    rule_set = load_rules(
        str(rules), Settings(cost_alert_usd=0, latency_alert_s=0, memory_alert_mb=0)
    )
    shard = 1
    batch = [(s, e) for s, e in traffic(40) if s == shard]
    failed = {e.session_id for _, e in batch if not e.success}

    async def scenario() -> tuple[int, int]:
        client = async_client(cluster.url)

        def consumer() -> Consumer:
            return Consumer(client, lambda: AlertsProcessor(rule_set), config(), shard=shard)

        # 1. committed, then "killed" before relaying
        dead = consumer()
        await dead.setup()
        write(rc, batch[:20], SHARDS)
        dead.absorb(await dead.read(None))
        assert (await dead._committer.commit(dead._commit(dead.unit))).applied
        left = rc.xlen(dead._relay.outbox)
        heir = consumer()
        await engine.run_loop(heir, asyncio.Event(), burst=True)  # its chores relay the record
        # 2. a relay applies a record, then "dies" before trimming it
        write(rc, batch[20:], SHARDS)
        late = consumer()
        late.absorb(await late.read(None))
        assert (await late._committer.commit(late._commit(late.unit))).applied
        ((entry_id, fields),) = rc.xrange(late._relay.outbox)
        relay = late._relay
        await relay._script(keys=[relay.cursor], args=[entry_id, fields[b"u"]])
        again = await consumer().relay()
        await client.aclose()
        return left, again

    left, again = asyncio.run(scenario())
    assert left == 1 and again == 0
    fired = [n for n in notifications(rc) if n["rule"] == "failed"]
    assert sorted(n["labels"]["session"] for n in fired) == sorted(failed)
    assert rc.xlen(keys.on_shard(keys.control_outbox(keys.GROUP_ALERTS), shard)) == 0
