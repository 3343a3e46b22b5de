"""Helpers for the worker tests: run workers in burst mode, read totals back, craft garbage."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import redis

from llmtap import aggregates, keys
from llmtap.consumers import service
from llmtap.consumers.runtime.config import RuntimeConfig
from llmtap.testing import TOKEN_KINDS, GroundTruth, Workload

DAY = "20260101"  # the UTC day of the synthetic workload's default start


def config(**overrides: Any) -> RuntimeConfig:
    """A runtime config for tests: short timings, small units, given overrides."""
    values: dict[str, Any] = {
        "flush_interval_s": 0.2,
        "block_ms": 100,
        "claim_idle_s": 30.0,
        "heartbeat_ttl_s": 5,
    }
    values.update(overrides)
    return RuntimeConfig(**values)


def burst(
    url: str, names: Sequence[str] = ("cost", "latency"), **overrides: Any
) -> dict[str, service.WorkerStats]:
    """Drain the stream once with each worker; return their stats (fails after 120 s)."""
    run = service.run_burst(url, names, config=config(**overrides))
    return asyncio.run(asyncio.wait_for(run, 120))


def day_totals(r: redis.Redis, day: str = DAY) -> dict[str, int]:
    """Return the day's exact totals: cost in nano-USD and every ``total|`` usage metric."""
    out = {"cost_nanousd": int(r.hget(keys.cost("d", day), aggregates.TOTAL) or 0)}
    for name, value in aggregates.decode_counts(r.hgetall(keys.usage("d", day))).items():
        dim, metric = aggregates.split_usage_field(name)
        if dim == aggregates.TOTAL:
            out[metric] = value
    return out


def truth_totals(truth: GroundTruth) -> dict[str, int]:
    """Return the totals a correct cost worker writes for ``truth`` (same keys as day_totals)."""
    out = {
        "cost_nanousd": truth.cost_nanousd,
        "calls": truth.calls,
        "errors": truth.errors,
        "unpriced_calls": truth.unpriced_calls,
    }
    out.update({f"{kind}_tokens": truth.tokens[kind] for kind in TOKEN_KINDS})
    if truth.unpriced_call_events:
        out["unpriced_events"] = truth.unpriced_call_events
    return {name: value for name, value in out.items() if value}


def latency_events(r: redis.Redis, granularity: str = "d", bucket: str = DAY) -> int:
    """Return the number of call events in a bucket's latency sketches (all backends/models)."""
    total = 0
    for member in r.smembers(keys.latency_index(granularity, bucket)):
        backend, model = json.loads(member)
        total += int(r.hget(keys.latency(granularity, bucket, backend, model), "latency:n") or 0)
    return total


def stats(r: redis.Redis, group: str) -> dict[str, int]:
    """Return a group's counters hash as ints."""
    return {k.decode(): int(v) for k, v in r.hgetall(keys.stats(group)).items()}


def wait_for(condition: Callable[[], bool], deadline_s: float = 60.0, poll_s: float = 0.02) -> None:
    """Wait until ``condition()`` is true; raise AssertionError after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {deadline_s} s")
        time.sleep(poll_s)


def pack(value: object) -> bytes:
    """msgpack-encode an arbitrary value (to craft malformed events the codec never writes)."""
    return msgspec.msgpack.encode(value)


def workloads_on_shards(shards: int, *, seeds_from: int = 1, **options: Any) -> list[Workload]:
    """Synthetic producers whose ids map to shards ``0 … shards-1``, one each, in shard order:
    the first seeds from ``seeds_from`` that reach each shard (``options`` go to every
    :class:`Workload`)."""
    found: dict[int, Workload] = {}
    seed = seeds_from
    while len(found) < shards:
        workload = Workload(seed, **options)
        found.setdefault(keys.shard_of(workload.producer_id, shards), workload)
        seed += 1
    return [found[k] for k in range(shards)]
