"""Alert state in Redis: pending, firing, repeats, resolution, replicas, and the workers' paths."""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio as aredis

from llmtap import events, keys, notify
from llmtap.analyzers.rules import Rule, fingerprint
from llmtap.consumers import service
from llmtap.consumers.alerts.evaluator import Evaluator
from llmtap.consumers.alerts.processor import AlertsProcessor
from llmtap.consumers.alerts.rules_file import rules_from_env
from llmtap.consumers.runtime.consumer import Consumer
from tests.alert_helpers import T0, active, call, inactive, notifications
from tests.consumer_helpers import config

RULE = Rule("slow", "latency_above", 2.0, group_by=("model",), repeat_interval_s=3600)
LABELS = {"model": "gpt-4o"}


def spend(r: redis.Redis, fields: dict[str, int], at: float = T0) -> None:
    """Write cost (nano-USD by dimension) into the minute, hour and day buckets of ``at``."""
    for granularity in keys.GRANULARITIES:
        r.hset(keys.cost(granularity, keys.bucket(granularity, at)), mapping=fields)


def test_fires_once_then_repeats_after_the_repeat_interval(r: redis.Redis, redis_url: str) -> None:
    """The first observation notifies; later ones within repeat_interval do not; then it repeats."""
    assert active(redis_url, RULE, LABELS, T0) == 1
    assert active(redis_url, RULE, LABELS, T0 + 60) == 0
    assert active(redis_url, RULE, LABELS, T0 + 3599) == 0
    assert active(redis_url, RULE, LABELS, T0 + 3600) == 1
    sent = notifications(r)
    assert [n["status"] for n in sent] == ["firing", "firing"]
    assert [n["sequence"] for n in sent] == [1, 2]
    assert sent[1]["startsAt"] == T0  # a repeat keeps the original start


def test_resolves_when_the_condition_clears(r: redis.Redis, redis_url: str) -> None:
    """A firing alert observed inactive sends one resolved notification with its end time."""
    fp = fingerprint(RULE.name, LABELS)
    active(redis_url, RULE, LABELS, T0)
    assert inactive(redis_url, RULE, LABELS, T0 + 30) == 1
    assert inactive(redis_url, RULE, LABELS, T0 + 60) == 0
    resolved = notifications(r)[-1]
    assert resolved["status"] == "resolved" and resolved["endsAt"] == T0 + 30
    assert resolved["idempotency_key"] == f"{fp}:2"
    assert r.zcard(keys.alert_active(RULE.name)) == 0


def test_fires_again_after_resolving(r: redis.Redis, redis_url: str) -> None:
    """A resolved alert that comes back fires at once with a new start time."""
    active(redis_url, RULE, LABELS, T0)
    inactive(redis_url, RULE, LABELS, T0 + 30)
    assert active(redis_url, RULE, LABELS, T0 + 40) == 1
    assert notifications(r)[-1]["startsAt"] == T0 + 40


def test_for_keeps_an_alert_pending_until_it_held_long_enough(
    r: redis.Redis, redis_url: str
) -> None:
    """With ``for: 5m`` nothing is sent before five minutes of the condition holding."""
    rule = Rule("slow", "latency_above", 2.0, for_s=300)
    assert active(redis_url, rule, {}, T0) == 0
    assert r.hget(keys.alert_state(fingerprint("slow", {})), "status") == b"pending"
    assert active(redis_url, rule, {}, T0 + 299) == 0
    assert active(redis_url, rule, {}, T0 + 300) == 1
    assert notifications(r)[0]["startsAt"] == T0


def test_a_pending_alert_that_clears_sends_nothing(r: redis.Redis, redis_url: str) -> None:
    """Pending then inactive is forgotten silently (no resolved for what never fired)."""
    rule = Rule("slow", "latency_above", 2.0, for_s=300)
    active(redis_url, rule, {}, T0)
    assert inactive(redis_url, rule, {}, T0 + 10) == 0
    assert notifications(r) == [] and not r.exists(keys.alert_state(fingerprint("slow", {})))


def test_send_resolved_false_skips_the_resolved_notification(
    r: redis.Redis, redis_url: str
) -> None:
    """A rule with send_resolved false resolves its state but sends nothing."""
    rule = Rule("budget", "monthly_budget", budget_usd=1, send_resolved=False)
    active(redis_url, rule, {}, T0)
    assert inactive(redis_url, rule, {}, T0 + 10) == 0
    assert [n["status"] for n in notifications(r)] == ["firing"]


def test_two_evaluators_give_one_notification(r: redis.Redis, redis_url: str) -> None:
    """Many evaluators stepping the same observation at once enqueue a single notification."""

    async def go() -> list[int]:
        clients = [aredis.Redis.from_url(redis_url) for _ in range(8)]
        reader = redis.Redis.from_url(redis_url)
        rule = Rule("spend", "daily_cost_above", 1.0)
        evaluators = [Evaluator(c, reader, [rule]) for c in clients]
        spend(r, {"total": 5 * 10**9})
        try:
            return await asyncio.gather(*(e.tick(T0 + 60) for e in evaluators))
        finally:
            for c in clients:
                await c.aclose()
            reader.close()

    assert sorted(asyncio.run(go())) == [0] * 7 + [1]
    assert len(notifications(r)) == 1


async def tick(redis_url: str, rule: Rule, now: float) -> int:
    """Run one evaluator tick for ``rule`` at ``now``; return the notifications it enqueued."""
    client, reader = aredis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    try:
        return await Evaluator(client, reader, [rule]).tick(now)
    finally:
        await client.aclose()
        reader.close()


def test_a_windowed_rule_fires_and_resolves_on_the_tick(r: redis.Redis, redis_url: str) -> None:
    """The tick reads the cost aggregates: over the threshold fires, next day resolves."""
    rule = Rule("spend", "daily_cost_above", 1.0, group_by=("backend",))
    spend(r, {"total": 5 * 10**9, "backend:openai": 4 * 10**9, "backend:x": 10**8})

    assert asyncio.run(tick(redis_url, rule, T0 + 3600)) == 1
    assert asyncio.run(tick(redis_url, rule, T0 + 7200)) == 0
    assert asyncio.run(tick(redis_url, rule, T0 + 86400 + 60)) == 1
    first, last = notifications(r)
    assert first["labels"] == {"backend": "openai"} and first["values"]["value"] == 4.0
    assert last["status"] == "resolved"


def test_per_call_alerts_go_through_the_consumer_commit(r: redis.Redis, redis_url: str) -> None:
    """The alerts worker turns slow call events into one notification per fingerprint."""
    slow = [call(call_id=f"c{i}", latency=5.0, end_time=T0 + 5 + i) for i in range(50)]
    slow.append(call(call_id="other", model_name="gpt-4o-mini", latency=9.0, end_time=T0 + 9))
    slow.append(call(call_id="fast"))
    for event in slow:
        r.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(event)})

    async def go() -> None:
        client = aredis.Redis.from_url(redis_url)
        consumer = Consumer(client, lambda: AlertsProcessor([RULE]), config())
        from llmtap.consumers.runtime import engine

        await engine.run_loop(consumer, asyncio.Event(), burst=True)
        await client.aclose()

    asyncio.run(go())
    sent = notifications(r)
    assert sorted(n["labels"]["model"] for n in sent) == ["gpt-4o", "gpt-4o-mini"]
    fp = fingerprint(RULE.name, LABELS)
    assert float(r.hget(keys.alert_state(fp), "last_seen") or 0) == T0 + 54


def test_per_call_alerts_resolve_after_resolve_after(r: redis.Redis, redis_url: str) -> None:
    """The tick resolves a per-call alert not seen for resolve_after, not one seen recently."""
    rule = Rule("slow", "latency_above", 2.0, group_by=("model",), resolve_after_s=300)
    active(redis_url, rule, LABELS, T0)

    assert asyncio.run(tick(redis_url, rule, T0 + 299)) == 0
    assert asyncio.run(tick(redis_url, rule, T0 + 300)) == 1
    assert notifications(r)[-1]["status"] == "resolved"


def test_the_alerts_worker_runs_from_the_registry(
    r: redis.Redis, redis_url: str, monkeypatch: Any, tmp_path: Any
) -> None:
    """``llmtap worker alerts`` (burst) fires from the rules file; its final tick resolves.

    The event is from T0, long before the tick's wall clock, so the tick finds it stale.
    """
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {name: failing, kind: error, severity: critical}\n")
    monkeypatch.setenv("LLMTAP_ALERT_RULES", str(path))
    r.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(call(success=False, error_type="E"))})
    assert [rule.name for rule in rules_from_env()][-1] == "failing"
    asyncio.run(service.run_burst(redis_url, ["alerts"], config=config()))
    sent = [(n["rule"], n["severity"], n["status"]) for n in notifications(r)]
    assert sent == [("failing", "critical", "firing"), ("failing", "critical", "resolved")]


def test_two_alerts_worker_replicas_send_each_notification_once(
    r: redis.Redis, redis_url: str
) -> None:
    """Two consumers of the alerts group splitting 400 slow calls enqueue one notification."""
    for i in range(400):
        event = call(call_id=f"c{i}", latency=5.0, end_time=T0 + 5 + i / 100)
        r.xadd(keys.EVENTS, {keys.FIELD_EVENT: events.encode(event)})

    async def replica(name: str) -> None:
        client = aredis.Redis.from_url(redis_url)
        consumer = Consumer(
            client, lambda: AlertsProcessor([RULE]), config(read_count=7), name=name
        )
        from llmtap.consumers.runtime import engine

        await engine.run_loop(consumer, asyncio.Event(), burst=True)
        await client.aclose()

    async def both() -> None:
        await asyncio.gather(replica("a"), replica("b"))

    asyncio.run(both())
    assert [n["status"] for n in notifications(r)] == ["firing"]
    groups = {g["name"]: g for g in r.xinfo_groups(keys.EVENTS)}
    assert groups[keys.GROUP_ALERTS.encode()]["pending"] == 0


def test_the_lua_writes_a_versioned_alert_message(r: redis.Redis, redis_url: str) -> None:
    """An alert the Lua step enqueues decodes as a version-1 alert message with its fingerprint."""
    active(redis_url, RULE, LABELS, T0)
    ((_, fields),) = r.xrange(keys.NOTIFY)
    message = notify.decode_message(fields)
    assert message.kind == "alert" and message.version == notify.OUTBOX_VERSION
    assert fields[b"fp"].decode() == message.payload["fingerprint"]


def test_every_state_hash_is_in_the_index_until_it_goes(r: redis.Redis, redis_url: str) -> None:
    """``keys.ALERT_STATES`` lists each fingerprint with a state hash, scored by when the hash
    expires on the server's clock; a pending alert that clears leaves it with its hash."""
    firing, pending = fingerprint(RULE.name, LABELS), fingerprint("slow", {})
    active(redis_url, RULE, LABELS, T0)
    active(redis_url, Rule("slow", "latency_above", 2.0, for_s=300), {}, T0)
    server_now = float(r.time()[0])
    index = dict(r.zrange(keys.ALERT_STATES, 0, -1, withscores=True))
    assert set(index) == {firing.encode(), pending.encode()}
    for fp, expires in index.items():
        ttl = r.ttl(keys.alert_state(fp.decode()))
        assert abs(expires - (server_now + ttl)) <= 2
    inactive(redis_url, Rule("slow", "latency_above", 2.0, for_s=300), {}, T0 + 10)
    assert r.zrange(keys.ALERT_STATES, 0, -1) == [firing.encode()]
    inactive(redis_url, RULE, LABELS, T0 + 20)  # resolved: kept, still listed
    assert r.zrange(keys.ALERT_STATES, 0, -1) == [firing.encode()]
    r.zadd(keys.ALERT_STATES, {"gone": server_now - 1})  # a hash expired since its last step
    active(redis_url, RULE, LABELS, T0 + 30)
    assert r.zrange(keys.ALERT_STATES, 0, -1) == [firing.encode()]


def test_the_alerts_worker_indexes_states_written_before_the_index(
    r: redis.Redis, redis_url: str
) -> None:
    """State hashes without an index entry (written by layout-3 workers) are added at start,
    once, with their expiry; indexed ones keep theirs."""
    r.hset(keys.alert_state("old"), mapping={"status": "resolved", "rule": "slow"})
    r.expire(keys.alert_state("old"), 600)
    r.hset(keys.alert_state("known"), mapping={"status": "firing", "rule": "slow"})
    r.zadd(keys.ALERT_STATES, {"known": 123.0})

    async def index() -> int:
        client = aredis.Redis.from_url(redis_url)
        try:
            return await Evaluator(client, r, [RULE]).store.index_states()
        finally:
            await client.aclose()

    assert asyncio.run(index()) == 1
    scores = dict(r.zrange(keys.ALERT_STATES, 0, -1, withscores=True))
    assert scores[b"known"] == 123.0
    assert abs(scores[b"old"] - (float(r.time()[0]) + 600)) <= 2
    assert asyncio.run(index()) == 0
