"""Compare storage layouts of the latency sketches for the read side: how long one pipelined read
of a 24 h range's sketches takes, plus decoding them into (slot, weight) arrays, per layout.

The sketches are built here (not by the workers), with the field counts a day of 1M events gives
(6 backend/model pairs; each minute bucket about 115 events per pair, each hour about 6.9k), so
every layout holds exactly the same bins:

- ``hash``: today's layout until layout 3, one hash field per bin (``<timing>:<bin>``) beside
  the stats; read with HGETALL.
- ``f8``: the stats hash (HGETALL) and one string per timing holding the bins as little-endian
  float64 at offset ``8 * dense slot`` (written with SETRANGE); read with GET, decoded with one
  ``numpy.frombuffer`` over the joined replies.
- ``u4``: as ``f8`` but big-endian u32 counters written with ``BITFIELD ... OVERFLOW SAT INCRBY``
  (only whole weights: sample rates 1/k); read with GET, ``dtype='>u4'``.
- ``blob``: one string per (bucket, pair) holding the stats and the four timings, a compacted
  form; read with one GET (the floor of any packed layout).
- ``field`` (layout 3, what llmtap stores): the stats hash plus one ``<timing>:sketch`` field
  per timing holding ``llmtap.aggregates.encode_sketch`` of its bins; read with HGETALL and
  decoded by the read side's own ``llmtap.read.latency.decode``.
- ``*_mget_only``, ``inter_*``, ``trim_*``, ``stats_only``: the parts of the string layouts
  (one MGET instead of a GET per key, timings interleaved in one string, strings trimmed to the
  bins they hold, the stats hashes alone).

Starts its own embedded Valkey. Prints one JSON object: per layout the bytes read, and the
median fetch and decode times in ms, and their ratio to ``hash``.

    python bench/sketch_layout.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import redis

from llmtap import aggregates
from llmtap.analyzers import sketch
from llmtap.embedded import EmbeddedValkey
from llmtap.read import latency

TIMINGS = ("latency", "network", "processing", "ttft")
STATS = ("n", "w", "sum", "min", "max")
PAIRS = 6
BUCKETS = {"m": (60, 115), "h": (23, 6_900)}  # a 24 h range: how many buckets, events per pair
WEIGHTS = (1.0, 2.0, 4.0, 10.0)  # 1 / the synthetic workload's sample rates


def sketches(rng: random.Random, events: int) -> list[dict[int, float]]:
    """Return one bucket's four sketches of ``events`` lognormal latencies (dense slots)."""
    out = []
    for t in range(len(TIMINGS)):
        values = np.array([rng.lognormvariate(-0.5 * t, 1.0) for _ in range(events)])
        weights = np.array([rng.choice(WEIGHTS) for _ in range(events)])
        bins = sketch.accumulate(values, weights)
        out.append({sketch.dense_slot(i): w for i, w in bins.items()})
    return out


def write(client: redis.Redis, name: str, bins: list[dict[int, float]]) -> None:
    """Write one bucket's sketches in every layout."""
    pipe = client.pipeline(transaction=False)
    stats = {f"{t}:{s}": 1.5 for t in TIMINGS for s in STATS}
    fields = dict(stats)
    blob = bytearray(struct.pack("<d", 0.0) * (len(TIMINGS) * len(STATS)))
    for t, timing in enumerate(TIMINGS):
        for slot, weight in sorted(bins[t].items()):
            fields[f"{timing}:{sketch.dense_bin(slot)}"] = repr(weight)
            pipe.setrange(f"f8:{name}:{t}", 8 * slot, struct.pack("<d", weight))
            pipe.execute_command(
                "BITFIELD",
                f"u4:{name}:{t}",
                "OVERFLOW",
                "SAT",
                "INCRBY",
                "u32",
                f"#{slot}",
                int(weight),
            )
        dense = np.zeros(sketch.DENSE_SIZE)
        for slot, weight in bins[t].items():
            dense[slot] = weight
        blob += dense[: max(bins[t], default=-1) + 1].astype("<f8").tobytes()
    for t in range(len(TIMINGS)):
        if bins[t]:
            lo, hi = min(bins[t]), max(bins[t])
            dense = np.zeros(hi - lo + 1)
            for slot, weight in bins[t].items():
                dense[slot - lo] = weight
            pipe.set(f"trim:{name}:{t}", struct.pack("<q", lo) + dense.astype("<f8").tobytes())
    inter = np.zeros(4 * sketch.DENSE_SIZE)
    for t in range(len(TIMINGS)):
        for slot, weight in bins[t].items():
            inter[4 * slot + t] = weight
    top = max((4 * s + t for t in range(4) for s in bins[t]), default=-1) + 1
    pipe.set(f"inter:{name}", struct.pack("<d", 1.5) * 23 + inter[:top].astype("<f8").tobytes())
    packed = {
        f"{timing}:sketch": aggregates.encode_sketch({sketch.dense_bin(s): w for s, w in b.items()})
        for timing, b in zip(TIMINGS, bins, strict=True)
    }
    pipe.hset(f"field:{name}", mapping={**stats, **packed})
    pipe.hset(f"hash:{name}", mapping=fields)
    pipe.hset(f"stats:{name}", mapping=stats)
    pipe.set(f"blob:{name}", bytes(blob))
    pipe.execute()


def read_hashes(client: redis.Redis, names: list[str], kind: str) -> Callable[[], Any]:
    """Return a fetch of every ``<kind>:<name>`` hash in one pipeline (HGETALL each)."""

    def fetch() -> Any:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(f"{kind}:{name}")
        return pipe.execute()

    return fetch


def decode_hash(replies: list[dict[bytes, bytes]]) -> Any:
    """What the fast path did: every field name mapped to a code, every value to a float."""
    codes: dict[bytes, int] = {}
    floats: dict[bytes, float] = {}

    def code(name: bytes) -> int:
        _, _, stat = name.partition(b":")
        return -1 if stat.decode() in STATS else int(stat)

    names = [k for reply in replies for k in reply]
    values = [v for reply in replies for v in reply.values()]
    c = np.fromiter(
        (codes[k] if k in codes else codes.setdefault(k, code(k)) for k in names),
        np.int64,
        len(names),
    )
    v = np.fromiter(
        (floats[x] if x in floats else floats.setdefault(x, float(x)) for x in values),
        np.float64,
        len(values),
    )
    return c, v


def read_packed(client: redis.Redis, names: list[str], kind: str) -> Callable[[], Any]:
    def fetch() -> Any:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(f"stats:{name}")
            for t in range(len(TIMINGS)):
                pipe.get(f"{kind}:{name}:{t}")
        return pipe.execute()

    return fetch


def decode_packed(replies: list[Any], dtype: str) -> Any:
    blobs = [b or b"" for i, b in enumerate(replies) if i % 5]
    stats = [r for i, r in enumerate(replies) if i % 5 == 0]
    size = np.dtype(dtype).itemsize
    lengths = np.fromiter((len(b) // size for b in blobs), np.int64, len(blobs))
    values = np.frombuffer(b"".join(blobs), dtype=dtype).astype(np.float64)
    present = np.flatnonzero(values)
    starts = np.cumsum(lengths) - lengths
    owner = np.searchsorted(starts, present, side="right") - 1
    _ = [float(v) for reply in stats for v in reply.values()]
    return present - starts[owner], values[present], owner


def read_gets(client: redis.Redis, names: list[str], kind: str, mget: bool) -> Callable[[], Any]:
    wanted = [f"{kind}:{name}:{t}" for name in names for t in range(len(TIMINGS))]
    if kind == "inter":
        wanted = [f"inter:{name}" for name in names]

    def fetch() -> Any:
        if mget:
            return client.mget(wanted)
        pipe = client.pipeline(transaction=False)
        for key in wanted:
            pipe.get(key)
        return pipe.execute()

    return fetch


def decode_fields(replies: list[dict[bytes, bytes]]) -> Any:
    return latency.decode([("b", "m")] * len(replies), replies)


def decode_f8(replies: list[Any]) -> Any:
    blobs = [b or b"" for b in replies]
    lengths = np.fromiter((len(b) // 8 for b in blobs), np.int64, len(blobs))
    values = np.frombuffer(b"".join(blobs), dtype="<f8")
    present = np.flatnonzero(values)
    starts = np.cumsum(lengths) - lengths
    owner = np.searchsorted(starts, present, side="right") - 1
    return present - starts[owner], values[present], owner


def decode_stats(replies: list[Any]) -> Any:
    return [float(v) for reply in replies for v in reply.values()]


def read_blob(client: redis.Redis, names: list[str]) -> Callable[[], Any]:
    def fetch() -> Any:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.get(f"blob:{name}")
        return pipe.execute()

    return fetch


def decode_blob(replies: list[bytes | None]) -> Any:
    values = np.frombuffer(b"".join(r or b"" for r in replies), dtype="<f8")
    return np.flatnonzero(values), values


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    call()
    walls = []
    for _ in range(repeat):
        started = time.perf_counter()
        out = call()
        walls.append(time.perf_counter() - started)
    return 1000 * statistics.median(walls), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(7)
    out: dict[str, Any] = {}
    with EmbeddedValkey() as server:
        client = redis.Redis.from_url(server.url)
        names = []
        for g, (count, events) in BUCKETS.items():
            for b in range(count):
                for p in range(PAIRS):
                    name = f"{g}:{b}:{p}"
                    write(client, name, sketches(rng, events))
                    names.append(name)
        out["hashes"] = len(names)
        layouts: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
            "hash": (read_hashes(client, names, "hash"), decode_hash),
            "f8": (read_packed(client, names, "f8"), lambda r: decode_packed(r, "<f8")),
            "u4": (read_packed(client, names, "u4"), lambda r: decode_packed(r, ">u4")),
            "blob": (read_blob(client, names), decode_blob),
            "f8_gets_only": (read_gets(client, names, "f8", False), decode_f8),
            "f8_mget_only": (read_gets(client, names, "f8", True), decode_f8),
            "trim_mget_only": (read_gets(client, names, "trim", True), decode_blob),
            "inter_mget": (read_gets(client, names, "inter", True), decode_f8),
            "inter_gets": (read_gets(client, names, "inter", False), decode_f8),
            "stats_only": (read_hashes(client, names, "stats"), decode_stats),
            "field": (read_hashes(client, names, "field"), decode_fields),
        }
        for layout, (fetch, decode) in layouts.items():
            fetch_ms, replies = timed(fetch, args.repeat)
            decode_ms, _ = timed(lambda: decode(replies), args.repeat)  # noqa: B023
            size = sum(
                len(r) if isinstance(r, bytes) else sum(len(k) + len(v) for k, v in r.items())
                for r in replies
                if r
            )
            out[layout] = {"bytes": size, "fetch_ms": fetch_ms, "decode_ms": decode_ms}
        fields = sum(len(r) for r in layouts["hash"][0]())
        out["hash"]["fields"] = fields
        client.close()
    base = out["hash"]["fetch_ms"] + out["hash"]["decode_ms"]
    for layout in [k for k in out if k not in ("hash", "hashes")]:
        out[layout]["total_over_hash"] = (out[layout]["fetch_ms"] + out[layout]["decode_ms"]) / base
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
