"""Helpers for the cluster tests: write synthetic traffic to its producer's shard, drain the
sharded stream with workers, and read totals back through the read side."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
import redis

from llmtap import keys
from llmtap.consumers import service
from llmtap.consumers.runtime.context import WorkerContext
from llmtap.read import query
from llmtap.testing import GroundTruth, Workload
from tests.consumer_helpers import config

DAY_START = 1_767_225_600.0  # 2026-01-01T00:00Z


def write(client: redis.Redis, workload: Workload, n_events: int, shards: int) -> str:
    """XADD ``n_events`` of ``workload`` to the shard its producer id maps to; return it."""
    stream = keys.events_stream(keys.shard_of(workload.producer_id, shards))
    pipe = client.pipeline(transaction=False)
    for i, fields in enumerate(workload.entries(n_events), 1):
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
        if i % 200 == 0:
            pipe.execute()
    pipe.execute()
    return stream


def context(url: str, shards: int, **overrides: Any) -> WorkerContext:
    """A worker context for ``url`` with ``shards`` shards and the tests' short timings."""
    env = {"LLMTAP_SHARDS": str(shards)}
    return WorkerContext.from_environ(url, env, runtime=config(**overrides))


def drain(
    url: str, shards: int, names: Sequence[str] = ("cost", "latency"), **overrides: Any
) -> dict[str, service.WorkerStats]:
    """Drain every shard once with each worker; return their stats (fails after 120 s)."""
    run = service.drain(context(url, shards, **overrides), names)
    return asyncio.run(asyncio.wait_for(run, 120))


def merged(truths: Sequence[GroundTruth]) -> dict[str, int]:
    """The exact totals of several workloads together (the keys :func:`read_totals` returns)."""
    return {
        "cost_nanousd": sum(t.cost_nanousd for t in truths),
        "calls": sum(t.calls for t in truths),
        "errors": sum(t.errors for t in truths),
        "call_events": sum(t.call_events for t in truths),
    }


def read_totals(client: redis.Redis, since: float = DAY_START) -> dict[str, int]:
    """The day's totals as the read side merges them over every shard."""
    row = query.total(client, since, since + 86400)
    latency = query.latency_percentiles(client, since, since + 86400, by="all")
    return {
        "cost_nanousd": row["cost_nanousd"],
        "calls": row["calls"],
        "errors": row["errors"],
        "call_events": latency[0]["count"] if latency else 0,
    }


def write_entries(client: redis.Redis, stream: str, entries: Sequence[dict[bytes, bytes]]) -> None:
    """XADD ``entries`` to ``stream`` in pipelined chunks."""
    pipe = client.pipeline(transaction=False)
    for i, fields in enumerate(entries, 1):
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
        if i % 200 == 0:
            pipe.execute()
    pipe.execute()


def assert_same(got: Any, want: Any, where: str = "", rel: float = 1e-9) -> None:
    """Assert two JSON-like answers are equal: every key, item and exact value, floats to
    ``rel`` (sums of floats added in another order: per shard, then over the shards)."""
    if dataclasses.is_dataclass(want) and not isinstance(want, type):
        assert type(got) is type(want), where
        assert_same(dataclasses.asdict(got), dataclasses.asdict(want), where, rel)  # type: ignore[arg-type]
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for name in want:
            assert_same(got[name], want[name], f"{where}.{name}", rel)
    elif isinstance(want, list | tuple):
        assert isinstance(got, list | tuple) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_same(a, b, f"{where}[{i}]", rel)
    elif isinstance(want, float) and not isinstance(got, bool):
        assert got == pytest.approx(want, rel=rel, abs=1e-12), where
    else:
        assert got == want, where
