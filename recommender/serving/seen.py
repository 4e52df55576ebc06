"""The items of a user's most recent events: the seen filter's input and the item-item
families' history, read on every recommendation request.

Read from the database each time, that was a round trip per request, most of a request's
wall time under load (the reply waits for a core and then for the GIL; docs/BENCHMARKS.md).
Each serving process instead keeps the lists it read in a bounded LRU, each tagged with
the user's seen token (``recommender/seen_tokens.py``), and a request reads only the token
(one Redis GET) to know whether its cached list is still the user's:

- token equal to the entry's tag, entry younger than ``max_age``: the cached list;
- otherwise the database, tagged with the token read *before* the query. An event
  committed between the two replaces the token, so the next request reads again: a list
  is never trusted past a change of the user's events. No token yet: one is claimed
  first (``seen_token_claim``), with the same guarantee.

The filter stays exact: ingest replaces the token after its transaction commits and
before it answers, so a request sent after an event was accepted sees it. Without Redis,
or with Redis unreachable, every request reads the database (as before the cache).
``max_age`` bounds how long a token replacement lost to a Redis failure can matter."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import redis
from django.conf import settings
from prometheus_client import Counter

from recommender.seen_tokens import seen_token, seen_token_claim, seen_tokens_enabled
from recommender.selectors import user_recent_item_pks

SEEN_READS = Counter(
    "recsite_seen_reads_total",
    "Recommendation requests by where the user's recent items came from: cache (a cached "
    "list whose seen token still matched), database (read and cached), uncached (read from "
    "the database: no Redis, Redis unreachable, or the cache is off).",
    ["source"],
)
_FROM_CACHE = SEEN_READS.labels("cache")
_FROM_DATABASE = SEEN_READS.labels("database")
_UNCACHED = SEEN_READS.labels("uncached")


@dataclass(frozen=True)
class _Entry:
    token: bytes
    read_at: float
    item_pks: np.ndarray  # int64, read-only: shared by the requests that use it


def _as_array(item_pks: Sequence[int]) -> np.ndarray:
    array = np.asarray(item_pks, dtype=np.int64)
    array.flags.writeable = False
    return array


class SeenCache:
    """Recent item keys per user (newest first), validated by the user's seen token."""

    def __init__(
        self,
        *,
        capacity: int,
        max_age: float,
        read: Callable[[str], Sequence[int]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.max_age = max_age
        self._read = read
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def recent_item_pks(self, user_id: str) -> np.ndarray:
        if self.capacity <= 0 or not seen_tokens_enabled():
            _UNCACHED.inc()
            return _as_array(self._read(user_id))
        try:
            token = seen_token(user_id)
            entry = self._entries.get(user_id)
            if (
                token is not None
                and entry is not None
                and entry.token == token
                and self._clock() - entry.read_at < self.max_age
            ):
                _FROM_CACHE.inc()
                return entry.item_pks
            if token is None:
                token = seen_token_claim(user_id)
        except redis.RedisError:
            _UNCACHED.inc()
            return _as_array(self._read(user_id))
        read_at = self._clock()
        item_pks = _as_array(self._read(user_id))
        self._put(user_id, _Entry(token, read_at, item_pks))
        _FROM_DATABASE.inc()
        return item_pks

    def _put(self, user_id: str, entry: _Entry) -> None:
        with self._lock:
            self._entries[user_id] = entry
            self._entries.move_to_end(user_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _read_database(user_id: str) -> list[int]:
    return user_recent_item_pks(user_id=user_id, limit=settings.RECSITE_SEEN_EVENTS_MAX)


_cache: SeenCache | None = None
_cache_lock = threading.Lock()


def seen_cache() -> SeenCache:
    """The process's cache, sized from the settings on first use."""
    global _cache
    if _cache is None:
        with _cache_lock:
            if _cache is None:
                _cache = SeenCache(
                    capacity=settings.RECSITE_SEEN_CACHE_USERS,
                    max_age=settings.RECSITE_SEEN_CACHE_SECONDS,
                    read=_read_database,
                )
    return _cache


def seen_cache_reset() -> None:
    """Forget the cache and its sizes (tests, and settings changed at run time)."""
    global _cache
    with _cache_lock:
        _cache = None


def recent_item_pks(user_id: str) -> np.ndarray:
    """The keys of the items of the user's ``RECSITE_SEEN_EVENTS_MAX`` most recent events,
    newest first, as the database has them now."""
    return seen_cache().recent_item_pks(user_id)
