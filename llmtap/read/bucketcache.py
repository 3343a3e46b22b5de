"""An in-process cache of decoded aggregate hashes of closed buckets, for readers that ask the
same ranges again and again (a dashboard polling every few seconds).

A bucket is closed once its end lies ``grace_s`` in the past: workers commit about every second,
so nothing more is written to it unless a worker was far behind (a backlog, a late rollup). To
bound what such a late write can hide, an entry is used for ``max_age_s`` at most and then read
again. Opt-in: the tool functions read uncached unless given a cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from llmtap import keys

DEFAULT_GRACE_S: Final = 300.0
DEFAULT_MAX_AGE_S: Final = 900.0
DEFAULT_MAX_ENTRIES: Final = 50_000  # a 7-day range of 6 models needs about 3k


class BucketCache:
    """Key name -> decoded value of closed buckets, least recently used evicted first.

    Safe to share between threads (``llmtap serve`` answers requests from a thread pool)."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        grace_s: float = DEFAULT_GRACE_S,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1 or grace_s < 0 or max_age_s <= 0:
            raise ValueError("max_entries must be >= 1, grace_s >= 0 and max_age_s > 0")
        self.max_entries = max_entries
        self.grace_s = grace_s
        self.max_age_s = max_age_s
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def closed(self, granularity: str, start: int) -> bool:
        """Return whether the bucket starting at ``start`` ended ``grace_s`` ago or more."""
        return start + keys.BUCKET_SECONDS[granularity] + self.grace_s <= self.clock()

    def get(self, key: str) -> Any | None:
        """Return the value kept for ``key``, None when absent or older than ``max_age_s``."""
        with self._lock:
            item = self._items.get(key)
            if item is None or self.clock() - item[0] > self.max_age_s:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[1]

    def put(self, key: str, value: Any) -> None:
        """Keep ``value`` for ``key``, evicting the least recently used beyond ``max_entries``."""
        with self._lock:
            self._items[key] = (self.clock(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
