"""The alerts summary, read from the alert worker's state hashes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Final

import redis

from llmtap import keys
from llmtap.analyzers.rules import Rule
from llmtap.read.alerts import alerts_summary
from llmtap.read.window import iso
from llmtap.settings import Settings
from tests.alert_helpers import T0, active, inactive
from tests.read.truth import DAY0

NUMBER: Final = re.compile(r"^-?[0-9.]+(e[+-]?[0-9]+)?$", re.IGNORECASE)


def write_state(r: redis.Redis, fingerprint: str, fields: dict[str, object]) -> None:
    """Write a state hash and its index entry, as the alert step script does."""
    r.hset(keys.alert_state(fingerprint), mapping=fields)  # type: ignore[arg-type]
    r.zadd(keys.ALERT_STATES, {fingerprint: float(r.time()[0]) + keys.ALERT_STATE_TTL_S})


def test_a_state_whose_hash_expired_is_not_listed(r: redis.Redis) -> None:
    """An index entry whose hash is gone (expired since its last step) lists nothing."""
    write_state(r, "fp-now", {"rule": "p95", "status": "firing", "starts_at": DAY0 + 100})
    r.zadd(keys.ALERT_STATES, {"fp-gone": float(r.time()[0]) + 60})
    got = alerts_summary(r, DAY0, DAY0 + 3600, Settings())
    assert [a["fingerprint"] for a in got["firing"]] == ["fp-now"]


def test_alerts_fired_and_resolved_in_the_window_come_from_the_alert_state(
    r: redis.Redis,
) -> None:
    """Alert state hashes give the firing alerts and those fired or resolved in the window."""
    old = {"rule": "cost", "status": "resolved", "starts_at": DAY0 - 9e4, "ends_at": DAY0 + 60}
    write_state(r, "fp-old", old)
    write_state(r, "fp-now", {"rule": "p95", "status": "firing", "starts_at": DAY0 + 100})
    got = alerts_summary(r, DAY0, DAY0 + 3600, Settings())
    assert got["history_available"] is True
    assert [a["fingerprint"] for a in got["firing"]] == ["fp-now"]
    assert [a["fingerprint"] for a in got["fired"]] == ["fp-now"]
    assert [a["fingerprint"] for a in got["resolved"]] == ["fp-old"]
    assert got["thresholds"]["daily_cost_usd"] == 100.0


def test_alert_rows_carry_iso_times(r: redis.Redis) -> None:
    """The summary's rows give ISO-8601 UTC times, not the hash's number strings."""
    write_state(r, "fp", {"rule": "p95", "status": "resolved", "starts_at": "1.7672256e+9",
                          "ends_at": str(DAY0 + 90.5)})  # fmt: skip
    got = alerts_summary(r, DAY0 - 10, DAY0 + 3600, Settings())
    assert got["fired"] == got["resolved"] == [
        {"fingerprint": "fp", "rule": "p95", "status": "resolved",
         "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-01T00:01:30Z"}
    ]  # fmt: skip


def test_alerts_show_prints_typed_numbers_and_iso_times(r: redis.Redis, redis_url: str) -> None:
    """``llmtap alerts show FP`` (a real process) prints seq as an integer and every time as
    ISO-8601 UTC, after the alert step script wrote them as Lua number strings."""
    rule = Rule("slow-call", "latency_above", 30.0)
    active(redis_url, rule, {"model": "gpt-4o"}, T0 + 0.25)
    inactive(redis_url, rule, {"model": "gpt-4o"}, T0 + 60.75)
    (name,) = r.scan_iter(match=keys.alert_state("*"))
    fingerprint = name.decode().removeprefix(keys.alert_state(""))
    assert r.hget(name, "seq") == b"2"  # the hash holds strings
    done = subprocess.run(
        [sys.executable, "-m", "llmtap.cli.main", "alerts", "show", fingerprint, "--url",
         redis_url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    assert state["seq"] == 2 and state["status"] == "resolved"
    assert state["starts_at"] == iso(T0) and state["ends_at"] == iso(T0 + 60)
    assert state["last_seen"] == iso(T0) and state["doc"]["labels"] == {"model": "gpt-4o"}
    assert {k for k, v in state.items() if isinstance(v, str) and NUMBER.match(v)} == set()
