"""The read function of cost-by-tag: per tag label, its numbers over a time range."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import redis

from llmtap.read import ranges
from llmtap.read.plugins import Param, PluginRead
from llmtap_cost_by_tag.analyzer import METRICS, cost_key


def cost_by_tag(
    client: redis.Redis, since: float, until: float, *, key: str | None = None
) -> dict[str, dict[str, Any]]:
    """Return, per ``key=value`` label (only tag ``key``'s when given), over ``[since,
    until)``: ``events``, ``cost_usd`` (of the sampled events, exact), ``estimated_cost_usd``
    (every call, from 1/sample_rate weights) and ``unpriced_events``; most expensive first."""
    sums = ranges.sum_ints(client, cost_key, since, until)
    rows: defaultdict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for name, value in sums.items():
        label, _, metric = name.rpartition("|")
        if key is None or label.startswith(f"{key}="):
            rows[label][metric] = value
    out = {
        label: {
            "events": row["events"],
            "cost_usd": row["cost_nanousd"] / 1e9,
            "estimated_cost_usd": row["est_cost_nanousd"] / 1e9,
            "unpriced_events": row["unpriced"],
        }
        for label, row in rows.items()
    }
    return dict(sorted(out.items(), key=lambda item: -item[1]["estimated_cost_usd"]))


def _read(client: redis.Redis, args: Mapping[str, Any], now: float) -> dict[str, Any]:
    return cost_by_tag(client, now - args["hours"] * 3600, now, key=args["key"])


# `llmtap cost-by-tag --hours 24 --key feature` and `GET /api/v1/x/cost-by-tag?hours=24`.
READ = PluginRead(
    "cost-by-tag",
    "cost per call tag (feature, team, customer) over the last hours",
    _read,
    (
        Param("hours", "number", "how far back, in hours", 24.0, minimum=1 / 60, maximum=24 * 400),
        Param("key", "string", "only this tag key (e.g. feature)"),
    ),
)
