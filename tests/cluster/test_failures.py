"""Failures on a real 3+3 Valkey Cluster: worker replicas SIGKILLed mid-run, and a primary
SIGKILLed mid-run (its replica is promoted) while real producers keep calling."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from llmtap import keys
from llmtap.embedded_cluster import EmbeddedCluster
from llmtap.producers.profiler import Profiler
from llmtap.read import query
from llmtap.settings import Settings
from llmtap.testing import Workload
from tests import contract_helpers
from tests.cluster.conftest import SHARDS, cluster_client
from tests.cluster.helpers import merged, read_totals, write
from tests.consumer_helpers import wait_for, workloads_on_shards

SHARDED = {"LLMTAP_SHARDS": str(SHARDS)}


def spawn(url: str, worker: str, log: Path) -> subprocess.Popen[bytes]:
    """Start one worker process on the cluster with the contract tests' short timings."""
    return contract_helpers.spawn(url, "loop", log, ("worker", worker), SHARDED)


def drained(client: redis.Redis) -> bool:
    """True when both groups read and acknowledged every entry of every shard."""
    for shard in range(SHARDS):
        stream = keys.events_stream(shard)
        if not client.exists(stream):
            continue
        infos = {info["name"].decode(): info for info in client.xinfo_groups(stream)}
        for group in (keys.GROUP_COST, keys.GROUP_LATENCY):
            info = infos.get(group)
            if info is None or info["pending"] or info["lag"]:
                return False
    return True


def stop_all(procs: list[subprocess.Popen[bytes]], log: Path) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]


class Writer(threading.Thread):
    """Writes three producers' synthetic traffic to their shards while workers run."""

    def __init__(self, url: str, workloads: list[Workload], rounds: int) -> None:
        super().__init__(daemon=True)
        self.url, self.workloads, self.rounds = url, workloads, rounds

    def run(self) -> None:
        client = cluster_client(self.url)
        for _ in range(self.rounds):
            for workload in self.workloads:
                write(client, workload, 500, SHARDS)
        client.close()


@pytest.mark.slow
def test_sigkilled_worker_replicas_count_every_shard_exactly(
    cluster: EmbeddedCluster, rc: redis.Redis, tmp_path: Path
) -> None:
    """Replicas of the cost and latency workers killed with SIGKILL while three shards fill,
    replaced by fresh ones: the merged totals equal the ground truth."""
    workloads = workloads_on_shards(SHARDS)
    writer = Writer(cluster.url, workloads, rounds=40)
    log = tmp_path / "workers.log"
    steady = [spawn(cluster.url, name, log) for name in ("cost", "latency")]
    writer.start()
    for round_ in range(3):
        victims = [spawn(cluster.url, name, log) for name in ("cost", "latency")]
        for victim, group in zip(victims, ("cost", "latency"), strict=True):
            wait_for(lambda v=victim, g=group: contract_helpers.is_reading(rc, v.pid, [g]), 60)
        time.sleep(0.3 + 0.2 * round_)  # let the victims hold unacknowledged entries
        for victim in victims:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
    writer.join()
    wait_for(lambda: drained(rc), 120)
    stop_all(steady, log)
    assert read_totals(rc) == merged([w.truth for w in workloads])


def ask_forever(
    profiler: Profiler, stop: threading.Event, made: list[int], errors: list[Any]
) -> None:
    """Make profiled calls until ``stop``; count them; record anything the wrapper raised."""

    @profiler.profile(backend="openai")
    def ask() -> dict[str, Any]:
        return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 100, "completion_tokens": 10}}

    while not stop.is_set():
        try:
            ask()
        except Exception as exc:  # the wrapper must never raise: recorded and failed on
            errors.append(exc)
            return
        made[0] += 1
        time.sleep(0.0005)


@pytest.mark.slow
@pytest.mark.parametrize("wait_replicas", [0, 1])
def test_failover_of_a_primary_keeps_totals_and_producers_ride_through(
    own_cluster: EmbeddedCluster, tmp_path: Path, wait_replicas: int
) -> None:
    """A primary SIGKILLed while producers call and workers consume: its replica is promoted,
    no producer raises, and after the drain the merged call count equals the calls made minus
    the acknowledged writes the dead primary had not replicated (measured, printed): none
    with LLMTAP_WAIT_REPLICAS=1."""
    cluster = own_cluster
    client = cluster_client(cluster.url)
    log = tmp_path / "workers.log"
    workers = [spawn(cluster.url, name, log) for name in ("cost", "latency")]
    profilers = []
    for shard in range(SHARDS):
        producer_id = next(
            f"p{shard}-{i}" for i in range(1000) if keys.shard_of(f"p{shard}-{i}", SHARDS) == shard
        )
        settings = Settings(
            sampling_rate=1.0,
            rollup_interval_s=0.2,
            shards=SHARDS,
            producer_id=producer_id,
            wait_replicas=wait_replicas,
        )
        profilers.append(Profiler(settings, redis_url=cluster.url).start())
    stop, errors = threading.Event(), []
    made = [[0] for _ in profilers]
    threads = [
        threading.Thread(target=ask_forever, args=(p, stop, m, errors), daemon=True)
        for p, m in zip(profilers, made, strict=True)
    ]
    for thread in threads:
        thread.start()
    wait_for(lambda: _calls(client) > 2000, 60)
    victim = cluster.primary_port(keys.events_stream(0))
    killed_at = time.monotonic()
    cluster.kill(victim)
    wait_for(lambda: cluster.primary_port(keys.events_stream(0)) != victim, 30)
    promoted_s = time.monotonic() - killed_at
    cluster.wait_ok()
    # Operations replace the dead node: the promoted primary has a replica again (which
    # LLMTAP_WAIT_REPLICAS=1 needs to confirm anything on that shard).
    cluster.add_replica(cluster.primary_port(keys.events_stream(0)))
    before = _calls(client)
    wait_for(lambda: _calls(client) > before + 2000, 60)  # progress again after the failover
    stop.set()
    for thread in threads:
        thread.join()
    for profiler in profilers:
        profiler.close(timeout=10.0)
    wait_for(lambda: drained(client), 120)
    stop_all(workers, log)
    assert errors == []
    counted = _calls(client)
    total_made = sum(m[0] for m in made)
    lost = total_made - counted
    print(f"failover: promoted after {promoted_s:.2f} s; {total_made} calls, {lost} lost")
    assert counted <= total_made
    if wait_replicas:
        assert lost == 0  # every rollup was on a replica before it counted as sent
    else:
        assert lost <= 0.01 * total_made  # async replication: the last writes before the kill
    client.close()


def _calls(client: redis.Redis) -> int:
    now = time.time()
    return int(query.total(client, now - 3600, now + 60)["calls"])
