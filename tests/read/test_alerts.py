"""The alerts summary, read from the alert worker's state hashes."""

from __future__ import annotations

import redis

from llmtap import keys
from llmtap.read.alerts import alerts_summary
from llmtap.settings import Settings
from tests.read.truth import DAY0


def test_alerts_fired_and_resolved_in_the_window_come_from_the_alert_state(
    r: redis.Redis,
) -> None:
    """Alert state hashes give the firing alerts and those fired or resolved in the window."""
    old = {"rule": "cost", "status": "resolved", "starts_at": DAY0 - 9e4, "ends_at": DAY0 + 60}
    r.hset(keys.alert_state("fp-old"), mapping=old)
    r.hset(keys.alert_state("fp-now"), mapping={"rule": "p95", "status": "firing",
                                                "starts_at": DAY0 + 100})  # fmt: skip
    got = alerts_summary(r, DAY0, DAY0 + 3600, Settings())
    assert got["history_available"] is True
    assert [a["fingerprint"] for a in got["firing"]] == ["fp-now"]
    assert [a["fingerprint"] for a in got["fired"]] == ["fp-now"]
    assert [a["fingerprint"] for a in got["resolved"]] == ["fp-old"]
    assert got["thresholds"]["daily_cost_usd"] == 100.0
