"""The background thread that drains call records into counters and events into the stream.

It never raises into, and never blocks, the application: when Redis is down or slow the
thread alone waits; call events that cannot be written are dropped and counted; rollups are
kept and retried unchanged (same seq), so the consumers' de-duplication keeps totals exact.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from llmtap import events, keys
from llmtap.connection import sync_client, wait_for_replicas
from llmtap.events import RollupEvent
from llmtap.producers.recorder import CompactCall, Record, Recorder
from llmtap.retry import RetryPolicy, backoff
from llmtap.settings import Settings, SettingsError, redact_url

log = logging.getLogger(__name__)

DRAIN_CHUNK = 512  # records processed per lock hold, so an overflowing caller waits briefly
IDLE_SLEEP_S = 0.005
START_GRACE_S = 0.01  # before the start-up work, so the starting call is not kept waiting
MAX_PIPELINE_EVENTS = 1000  # events per pipelined write: larger writes measured slower (malloc)
# Redis down: retry forever, from 0.1 s doubling to 5 s, with full jitter.
RETRY: Final = RetryPolicy(attempts=0, base_s=0.1, cap_s=5.0, jitter=1.0)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def connect(url: str, timeout: float = 1.0) -> redis.Redis:
    """Return a client for ``url`` that fails fast instead of retrying inside a call."""
    return sync_client(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def _entry(chunk: list[bytes | CompactCall]) -> dict[bytes, bytes]:
    """Return the fields of one stream entry: ``e`` for a lone event, else a ``b`` array in
    which compact calls sharing a base become one group each."""
    first = chunk[0]
    if len(chunk) == 1 and isinstance(first, bytes):
        return {keys.FIELD_EVENT: first}
    items: list[bytes] = []
    groups: dict[bytes, list[tuple[Any, ...]]] = {}
    for item in chunk:
        if isinstance(item, bytes):
            items.append(item)
        else:
            base, row = item
            rows = groups.get(base)
            if rows is None:
                groups[base] = [row]
            else:
                rows.append(row)
    items.extend(events.encode_group(base, rows) for base, rows in groups.items())
    return {keys.FIELD_BATCH: events.join_batch(items)}


class Publisher:
    """Owns the record queue, the outbox of events and the thread that moves them to Redis."""

    def __init__(
        self,
        recorder: Recorder,
        base_settings: Settings,
        client_factory: Callable[[], redis.Redis],
        on_settings: Callable[[Settings], None],
        redis_url: str = "",
    ) -> None:
        self.recorder = recorder
        self.records: deque[Record] = deque()
        # Encoded call events, and kept plain calls in compact form (packed into groups).
        self.outbox: deque[bytes | CompactCall] = deque()
        self._base_settings = base_settings
        self._client_factory = client_factory
        self._client: redis.Redis | None = None
        self._on_settings = on_settings
        self._url_for_logs = redact_url(redis_url)
        self._pending_rollup: RollupEvent | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._deadline = 0.0
        self._last_overrides: dict[str, str] = {}
        self._rollup_requested = False
        self._inflight = False
        self.published_events = 0
        self.published_entries = 0

    # -- caller side -------------------------------------------------------------------------

    def overflow(self, record: Record) -> None:
        """Process a record on the caller's thread when the queue is full (counts stay exact)."""
        rec = self.recorder
        with rec.lock:
            event = rec.process(record)
            if event is not None:
                rec.stats.dropped_events += 1

    def request_rollup(self) -> None:
        """Ask the thread to close the rollup window now (used by ``Profiler.flush``)."""
        self._rollup_requested = True

    def idle(self) -> bool:
        """True when nothing is queued, pending or being written."""
        return not (
            self.records
            or self.outbox
            or self._pending_rollup
            or self._rollup_requested
            or self._inflight
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread."""
        self._thread = threading.Thread(target=self._run, name="llmtap-publisher", daemon=True)
        self._thread.start()

    def close(self, timeout: float) -> None:
        """Flush what is queued (waiting at most ``timeout`` seconds) and stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._deadline = time.perf_counter() + timeout
        self._stopping.set()
        thread.join(timeout + 2.0)  # one write may be blocked for the 1 s socket timeout
        self._thread = None
        if self._client is not None:
            self._client.close()

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        # Start-up happens here, off the caller's thread: the prices file and the catalogue
        # now, the connection at the first settings poll just below. It waits a moment first:
        # compiling holds the GIL, and the call that started this thread should return first.
        self._stopping.wait(START_GRACE_S)
        self.recorder.resolve_pricing()
        settings = self.recorder.settings
        next_rollup = time.perf_counter() + settings.rollup_interval_s
        next_poll = time.perf_counter()
        while not self._stopping.is_set():
            busy = self.drain()
            now = time.perf_counter()
            if now >= next_rollup or self._rollup_requested:
                self.drain_all()
                if self.cut_rollup(now):
                    self._rollup_requested = False  # a flush waits for its own cut
                next_rollup = now + self.recorder.settings.rollup_interval_s
            if now >= next_poll:
                self.poll_settings()
                next_poll = now + self.recorder.settings.settings_poll_s
            if (self.outbox or self._pending_rollup) and now >= self._retry_at:
                busy = (self.send() and bool(self.outbox)) or busy
            if not busy:
                self._stopping.wait(IDLE_SLEEP_S)
        self._final_flush()

    def drain_all(self) -> None:
        """Process every queued record."""
        while self.drain():
            pass

    def _final_flush(self) -> None:
        self.drain_all()
        cut = self.cut_rollup(time.perf_counter())
        while True:
            if not (self.outbox or self._pending_rollup):
                if cut:
                    return
                cut = self.cut_rollup(time.perf_counter())  # the counts behind a pending rollup
                continue
            # While Redis is failing, a write blocks for the socket timeout: past the deadline,
            # count what is left as dropped at once rather than outlive the caller's join.
            past_deadline = time.perf_counter() + self._retry_wait() > self._deadline
            if not (self._failures and past_deadline) and self.send():
                continue
            if time.perf_counter() + self._retry_wait() > self._deadline:
                self._drop_outbox()
                log.warning("llmtap: exiting with unsent counts (Redis unreachable)")
                return
            time.sleep(self._retry_wait())

    def _retry_wait(self) -> float:
        return max(self._retry_at - time.perf_counter(), 0.0)

    def drain(self) -> bool:
        """Process queued records into counters and the outbox; return True if any were."""
        records, rec = self.records, self.recorder
        if not records:
            return False
        limit = rec.settings.queue_size
        outbox, process, pop, encode = self.outbox, rec.process, records.popleft, events.encode
        call_type = events.CallEvent
        with rec.lock:
            for _ in range(min(len(records), DRAIN_CHUNK)):
                event = process(pop())
                if event is None:
                    continue
                if len(outbox) >= limit:
                    rec.stats.dropped_events += 1
                elif type(event) is call_type:
                    outbox.append(encode(event))
                else:
                    outbox.append(event)  # type: ignore[arg-type]
        return True

    def cut_rollup(self, now: float) -> bool:
        """Close the rollup window unless an earlier rollup still waits to be written.

        Returns True when the window was closed.
        """
        if self._pending_rollup is not None:
            return False  # keep counting into the open window; the pending one is retried as is
        with self.recorder.lock:
            self._pending_rollup = self.recorder.cut_rollup(now)
        return True

    def send(self) -> bool:
        """Write the pending rollup and the outbox in one pipeline. Return True on success."""
        self._inflight = True
        outbox = self.outbox  # only this thread touches the outbox
        if len(outbox) <= MAX_PIPELINE_EVENTS:
            batch = list(outbox)
            outbox.clear()
        else:
            batch = [outbox.popleft() for _ in range(MAX_PIPELINE_EVENTS)]
        rollup = self._pending_rollup
        try:
            client = self._connected()
            entries = self._write(client, rollup, batch)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc, len(batch))
            return False
        finally:
            self._inflight = False
        if self._failures:
            log.info("llmtap: Redis at %s is reachable again", self._url_for_logs)
        self._failures = 0
        self._pending_rollup = None
        self.published_events += len(batch)
        self.published_entries += entries
        return True

    def _write(
        self, client: redis.Redis, rollup: RollupEvent | None, batch: list[bytes | CompactCall]
    ) -> int:
        maxlen = self.recorder.settings.stream_maxlen
        size = self.recorder.settings.batch_size
        stream = keys.EVENTS  # the one stream key every entry of this producer goes to
        pipe = client.pipeline(transaction=False)
        entries = 0
        rec = self.recorder  # one shard per producer: its rollups meet their dedup marks
        stream = keys.events_stream(keys.shard_of(rec.producer_id, rec.settings.shards))
        if rollup is not None:
            pipe.xadd(stream, {keys.FIELD_EVENT: events.encode(rollup)},
                      maxlen=maxlen, approximate=True)  # fmt: skip
            entries += 1
        for i in range(0, len(batch), size):
            pipe.xadd(stream, _entry(batch[i : i + size]), maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
            entries += 1
        if entries:
            pipe.execute()
            if rec.settings.wait_replicas:  # durable before it counts as sent (failover)
                wait_for_replicas(client, stream, rec.settings.wait_replicas, 1000)
        return entries

    def _connected(self) -> redis.Redis:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _failed(self, exc: Exception, lost: int) -> None:
        self._failures += 1
        if lost:
            with self.recorder.lock:
                self.recorder.stats.dropped_events += lost
        if self._failures == 1:
            log.warning(
                "llmtap: cannot write to Redis at %s (%s); dropping call events, keeping counts",
                self._url_for_logs,
                type(exc).__name__,
            )
        self._retry_at = time.perf_counter() + backoff(self._failures, RETRY, random.random())

    def _drop_outbox(self) -> None:
        lost = len(self.outbox)
        self.outbox.clear()
        with self.recorder.lock:
            self.recorder.stats.dropped_events += lost

    def poll_settings(self) -> None:
        """Read the runtime-settings hash and apply each valid override; count bad ones."""
        try:
            raw = self._connected().hgetall(keys.RUNTIME_SETTINGS)
        except (redis.RedisError, OSError):
            return  # the send path reports outages
        overrides = {_text(k): _text(v) for k, v in raw.items()}
        if overrides == self._last_overrides:
            return
        self._last_overrides = overrides
        settings = self._base_settings
        for name, value in sorted(overrides.items()):
            try:
                settings = settings.with_overrides({name: value})
            except SettingsError as exc:
                self.recorder.stats.bad_runtime_settings += 1
                log.warning("llmtap: ignoring runtime setting: %s", exc)
        self._on_settings(settings)
