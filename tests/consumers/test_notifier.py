"""The notifier against real HTTP receivers on loopback (webhooks, and slack-sdk aimed at one)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import threading
from collections import defaultdict
from typing import Any

import pytest
import redis

from llmtap import keys, webhooks
from llmtap.analyzers.rules import Rule
from llmtap.cli.alerts import create_silence
from llmtap.consumers.notify.model import Receiver, Route
from llmtap.retry import RetryPolicy, backoff
from llmtap.testing import LocalReceiver, Received
from tests.alert_helpers import T0, active, deliver, inactive, webhook

WARN = Rule("slow", "latency_above", 2.0, group_by=("model",))
CRIT = Rule("down", "error", severity="critical", group_by=("model",))


def fire(url: str, n: int, rule: Rule = WARN) -> None:
    """Enqueue ``n`` firing notifications, one per model."""
    for i in range(n):
        active(url, rule, {"model": f"m{i}"}, T0 + i)


def failing(first: int, status: int = 503) -> Any:
    """A responder that answers ``status`` to the first ``first`` requests, then 200."""
    counter = itertools.count()
    return lambda got: (status, {}) if next(counter) < first else (200, {})


def only(got: Received) -> dict[str, Any]:
    """Return the single alert of a received v1 message."""
    (alert,) = got.json()["alerts"]
    return dict(alert)


def pending(r: redis.Redis) -> int:
    """Entries of the notify stream not yet acknowledged by the notifier group."""
    return int(r.xpending(keys.NOTIFY, keys.GROUP_NOTIFIER)["pending"])


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(1, 0.5, 0.9), (2, 0.5, 1.8), (4, 0.5, 7.2), (10, 0.5, 54.0), (1, 0.0, 1.0), (1, 1.0, 0.8)],
)
def test_backoff_is_exponential_capped_and_jittered(
    attempt: int, rand: float, expected: float
) -> None:
    """The notifier's wait is llmtap.retry's: base * 2**(attempt-1), capped, less up to
    jitter (0.2: 80-100 % of the doubled delay)."""
    policy = RetryPolicy(base_s=1.0, cap_s=60.0, jitter=0.2)
    assert backoff(attempt, policy, rand) == pytest.approx(expected)


def test_a_receiver_down_then_back_gets_everything_once_in_order(
    r: redis.Redis, redis_url: str
) -> None:
    """After seven failures every notification arrives, none twice, in order per fingerprint."""
    rule = Rule("slow", "latency_above", 2.0, group_by=("model",), repeat_interval_s=10)
    for i in range(3):  # two fingerprints, each fire, repeat, resolve: six notifications
        for model in ("a", "b"):
            if i < 2:
                active(redis_url, rule, {"model": model}, T0 + 10 * i)
            else:
                inactive(redis_url, rule, {"model": model}, T0 + 10 * i)
    sleeps: list[float] = []
    with LocalReceiver(secret="s3cret", respond=failing(7)) as rx:
        notifier = deliver(redis_url, [webhook("ops", rx.url, attempts=10)], sleeps=sleeps)
    bodies = [only(got) for got in rx.accepted]
    keys_seen = [b["idempotency_key"] for b in bodies]
    assert len(keys_seen) == len(set(keys_seen)) == 6
    by_fp: defaultdict[str, list[int]] = defaultdict(list)
    for b in bodies:
        by_fp[b["fingerprint"]].append(b["sequence"])
    assert all(seqs == [1, 2, 3] for seqs in by_fp.values())
    assert [b["status"] for b in bodies if b["labels"]["model"] == "a"][-1] == "resolved"
    assert len(sleeps) >= 7 and sleeps[1] > sleeps[0]  # a dropped connection adds one
    assert notifier.counters["ops"]["delivered"] == 6 and pending(r) == 0


def test_500s_are_retried_with_the_same_idempotency_key(r: redis.Redis, redis_url: str) -> None:
    """Two 500s then 200: three requests for one notification, all with one key."""
    fire(redis_url, 1)
    with LocalReceiver(respond=failing(2, 500)) as rx:
        notifier = deliver(redis_url, [webhook("ops", rx.url)])
    assert len(rx.requests) == 3
    assert len({got.headers[webhooks.IDEMPOTENCY_HEADER] for got in rx.requests}) == 1
    assert notifier.counters["ops"]["retried"] == 2


def test_dead_letter_after_the_last_attempt(r: redis.Redis, redis_url: str) -> None:
    """A receiver failing every attempt gets the entry dead-lettered, counted and acknowledged."""
    fire(redis_url, 1)
    with LocalReceiver(respond=lambda got: (500, {})) as rx:
        notifier = deliver(redis_url, [webhook("ops", rx.url, attempts=3)])
    assert len(rx.requests) == 3
    (_, letter), *_ = r.xrange(keys.NOTIFY_DLQ)
    assert letter[b"receiver"] == b"ops" and letter[b"reason"] == b"HTTP 500"
    assert json.loads(letter[b"n"])["rule"] == "slow"
    assert notifier.counters["ops"]["dead_lettered"] == 1 and pending(r) == 0
    assert r.hget(keys.notify_stats("ops"), "dead_lettered") == b"1"


def test_a_bad_signature_answer_is_not_retried(r: redis.Redis, redis_url: str) -> None:
    """A receiver with another secret answers 401: dead-lettered at once, no retries."""
    fire(redis_url, 1)
    with LocalReceiver(secret="other") as rx:
        deliver(redis_url, [webhook("ops", rx.url, secret="s3cret")])
    assert len(rx.requests) == 1 and r.xlen(keys.NOTIFY_DLQ) == 1


def test_signed_bodies_follow_schema_v1(r: redis.Redis, redis_url: str) -> None:
    """The receiver's verify() accepts each request, and the body has every v1 field."""
    fire(redis_url, 1)
    with LocalReceiver(secret="s3cret") as rx:
        deliver(redis_url, [webhook("ops", rx.url)])
    message = webhooks.verify("s3cret", rx.accepted[0].headers, rx.accepted[0].body)
    assert message["version"] == 1 and message["status"] == "firing"
    assert message["receiver"] == "ops" and len(message["alerts"]) == 1
    body = message["alerts"][0]
    assert message["idempotency_key"] == body["idempotency_key"] == f"{body['fingerprint']}:1"
    assert body["startsAt"] == "2026-01-01T00:00:00.000Z" and body["endsAt"] is None
    assert body["labels"] == {"model": "m0"} and body["thresholds"] == {"threshold": 2.0}
    assert body["command"] == f"llmtap alerts show {body['fingerprint']}"


def test_a_receiver_that_never_answers_does_not_stall_the_others(
    r: redis.Redis, redis_url: str
) -> None:
    """Twenty notifications reach the fast receiver while the hanging one holds its first."""
    fire(redis_url, 20)
    release = threading.Event()

    def hang(got: Received) -> tuple[int, dict[str, str]]:
        release.wait(30)
        return 200, {}

    try:
        with LocalReceiver(respond=hang) as stuck, LocalReceiver() as fast:
            receivers = [webhook("stuck", stuck.url, timeout_s=30), webhook("fast", fast.url)]
            deliver(redis_url, receivers, until=lambda: len(fast.accepted) == 20)
            assert stuck.accepted == [] and len(stuck.requests) <= 1
    finally:
        release.set()
    assert pending(r) == 20  # the stuck receiver's share is still owed: nothing acknowledged


def test_slack_429_retry_after_is_honoured(r: redis.Redis, redis_url: str) -> None:
    """slack-sdk's WebhookClient gets a 429 with Retry-After: 7; the next try waits 7 s."""
    fire(redis_url, 1, CRIT)
    answers = iter([(429, {"Retry-After": "7"}), (200, {})])
    sleeps: list[float] = []
    with LocalReceiver(respond=lambda got: next(answers)) as slack:
        receiver = Receiver("slack", "slack", url=slack.url, retry=RetryPolicy(base_s=0.01))
        notifier = deliver(redis_url, [receiver], sleeps=sleeps)
    assert sleeps == [7.0] and notifier.counters["slack"]["rate_limited"] == 1
    message = slack.accepted[0].json()
    assert message["text"].startswith("FIRING: down")
    assert message["blocks"][0]["type"] == "header"
    assert "llmtap alerts show" in json.dumps(message["blocks"][-1])


def test_slack_bot_token_posts_to_the_channel(r: redis.Redis, redis_url: str) -> None:
    """With a bot token, WebClient (base_url on loopback) calls chat.postMessage; 429 waits."""
    fire(redis_url, 1)
    ok = json.dumps({"ok": True}).encode()
    limited = json.dumps({"ok": False, "error": "ratelimited"}).encode()
    json_type = {"Content-Type": "application/json"}
    answers = iter([(429, {"Retry-After": "3", **json_type}, limited), (200, json_type, ok)])
    sleeps: list[float] = []
    with LocalReceiver(respond=lambda got: next(answers)) as api:
        receiver = Receiver(
            "slack", "slack", token="xoxb-test", channel="#alerts", base_url=api.url + "/"
        )
        deliver(redis_url, [receiver], sleeps=sleeps)
    assert sleeps == [3.0]
    assert api.accepted[0].path == "/chat.postMessage"
    assert api.accepted[0].headers["Authorization"] == "Bearer xoxb-test"


def test_routes_send_by_severity_and_labels(r: redis.Redis, redis_url: str) -> None:
    """A pager route takes critical alerts only; a catch-all receiver takes everything."""
    fire(redis_url, 2, WARN)
    fire(redis_url, 1, CRIT)
    with LocalReceiver() as pager, LocalReceiver() as everything:
        pager_rx = Receiver(
            "pager", "webhook", url=pager.url, routes=(Route(severities=("critical",)),)
        )
        deliver(redis_url, [pager_rx, webhook("all", everything.url, secret=None)])
    assert [only(got)["rule"] for got in pager.accepted] == ["down"]
    assert len(everything.accepted) == 3


def test_a_silence_suppresses_matching_alerts(r: redis.Redis, redis_url: str) -> None:
    """Alerts matching a silence are acknowledged and counted, not delivered; others are."""
    fire(redis_url, 2, WARN)
    fire(redis_url, 1, CRIT)
    create_silence(r, {"rule": "slow"}, 3600, now=T0, comment="known")
    with LocalReceiver() as rx:
        notifier = deliver(redis_url, [webhook("ops", rx.url, secret=None)], clock=lambda: T0 + 60)
    assert [only(got)["rule"] for got in rx.accepted] == ["down"]
    assert notifier.counters["ops"]["silenced"] == 2 and pending(r) == 0


def test_an_expired_silence_suppresses_nothing(r: redis.Redis, redis_url: str) -> None:
    """After its end a silence no longer applies."""
    fire(redis_url, 1, WARN)
    create_silence(r, {"rule": "slow"}, 60, now=T0)
    with LocalReceiver() as rx:
        deliver(redis_url, [webhook("ops", rx.url, secret=None)], clock=lambda: T0 + 61)
    assert len(rx.accepted) == 1


def test_a_redelivered_entry_skips_receivers_that_already_have_it(
    r: redis.Redis, redis_url: str
) -> None:
    """An entry a previous notifier delivered (but did not acknowledge) is not sent again."""
    fire(redis_url, 2)
    (first_id, _), _ = r.xrange(keys.NOTIFY)
    r.sadd(keys.notify_done("ops"), first_id)
    with LocalReceiver() as rx:
        deliver(redis_url, [webhook("ops", rx.url, secret=None)])
    assert [only(got)["labels"]["model"] for got in rx.accepted] == ["m1"]
    assert pending(r) == 0


def test_grouping_batches_alerts_of_a_rule_into_one_message(r: redis.Redis, redis_url: str) -> None:
    """With group_wait, five alerts of one rule arrive as one message; another rule apart."""
    fire(redis_url, 5, WARN)
    fire(redis_url, 1, CRIT)
    waits: list[float] = []

    async def short_wait(delay: float) -> None:
        waits.append(delay)
        await asyncio.sleep(0.05)  # stands in for group_wait: lets the batch gather

    with LocalReceiver() as rx:
        grouped = dataclasses.replace(webhook("ops", rx.url, secret=None), group_wait_s=30)
        deliver(redis_url, [grouped], sleep=short_wait)
    messages = sorted((got.json() for got in rx.accepted), key=lambda m: len(m["alerts"]))
    assert [len(m["alerts"]) for m in messages] == [1, 5]
    assert messages[1]["idempotency_key"].startswith("group:")
    assert waits == [30, 30] and pending(r) == 0


def test_entries_of_a_dead_notifier_are_reclaimed_and_delivered(
    r: redis.Redis, redis_url: str
) -> None:
    """Entries another notifier read but never acknowledged are taken over and delivered."""
    fire(redis_url, 3)
    r.xgroup_create(keys.NOTIFY, keys.GROUP_NOTIFIER, id="0")
    r.xreadgroup(keys.GROUP_NOTIFIER, "dead-notifier", {keys.NOTIFY: ">"}, count=10)
    with LocalReceiver() as rx:
        deliver(redis_url, [webhook("ops", rx.url, secret=None)], claim_idle_s=0.0)
    assert sorted(only(got)["labels"]["model"] for got in rx.accepted) == ["m0", "m1", "m2"]
    assert pending(r) == 0


def test_an_undecodable_outbox_entry_is_dead_lettered(r: redis.Redis, redis_url: str) -> None:
    """A foreign entry in llmtap:notify goes to the notify DLQ with its bytes, not lost."""
    r.xadd(keys.NOTIFY, {"n": b"not json"})
    with LocalReceiver() as rx:
        deliver(redis_url, [webhook("ops", rx.url, secret=None)])
    (_, letter), *_ = r.xrange(keys.NOTIFY_DLQ)
    assert letter[b"n"] == b"not json" and rx.requests == [] and pending(r) == 0
